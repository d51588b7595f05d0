"""The delimiters declared in MSH-1 and MSH-2."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ParseError


@dataclass(frozen=True, slots=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as it is written."""
        return f"{self.component}{self.repetition}{self.escape}{self.subcomponent}"

    @classmethod
    def from_header(cls, header: str) -> Separators:
        """Read the separators from the start of an MSH (or FHS/BHS) segment."""
        if len(header) < 8 or header[:3] not in ("MSH", "FHS", "BHS"):
            raise ParseError("message does not start with an MSH segment")
        known = _KNOWN.get(header[3:8])
        if known is not None:  # read once per set of delimiters: every message has them
            return known
        field = header[3]
        enc = header[4:8]
        if not _delimiter(field) or len(set(field + enc)) != 5:
            raise ParseError("MSH-1/MSH-2 do not declare five distinct delimiters")
        if not all(_delimiter(c) for c in enc):
            raise ParseError("MSH-2 encoding characters are not delimiters")
        seps = cls(field, enc[0], enc[1], enc[2], enc[3])
        if len(_KNOWN) < _KNOWN_MAX:  # bounded: a fuzzer's delimiters are not all kept
            _KNOWN[header[3:8]] = seps
        return seps


def _delimiter(char: str) -> bool:
    """A printable, non-alphanumeric character. Control characters are refused: an ACK echoes
    the delimiters in its MSH-2, and a <VT> or <FS> there could not be framed."""
    return not char.isalnum() and char.isprintable()


DEFAULT = Separators()
#: Valid delimiters already read, by MSH-1 and MSH-2 as written.
_KNOWN: dict[str, Separators] = {}
_KNOWN_MAX = 256
