"""A lazy HL7 v2 reader for the hot path.

Splitting on separators is about 50 times faster than a full parse (DESIGN.md §6), so the reader
keeps segments as strings and splits a segment into fields only when a field of it is read.
Positions follow the standard numbering: ``PID-3`` is the third field of PID, ``MSH-9`` the
message type (MSH-1 is the field separator itself). Components, repetitions and subcomponents
are 1-based; reading past the end gives ``""``, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from engine.errors import ParseError
from engine.hl7v2.escape import unescape
from engine.hl7v2.separators import Separators

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
_PATH = re.compile(r"([A-Z][A-Z0-9]{2})-(\d+)(?:\[(\d+)\])?(?:\.(\d+))?(?:\.(\d+))?\Z")


def split_segments(text: str) -> list[str]:
    """Split on CR, LF or CRLF and drop blank lines.

    A message that uses CR (alone or in CRLF) breaks only there: a bare LF inside it is data
    (a line break in a text value), not a segment break.
    """
    if "\r" in text:
        return [s.lstrip("\n") for s in text.split("\r") if s.strip()]
    return [s for s in text.split("\n") if s.strip()]


class Segment:
    """One segment; its fields are split on first access."""

    __slots__ = ("_fields", "_seps", "name", "text")

    def __init__(self, text: str, seps: Separators) -> None:
        self.text = text
        self.name = text[:3]
        self._seps = seps
        self._fields: list[str] | None = None

    def _split(self) -> list[str]:
        if self._fields is None:
            parts = self.text.split(self._seps.field)
            if self.name in ("MSH", "FHS", "BHS"):
                # MSH-1 is the separator itself; MSH-2 the encoding characters.
                parts.insert(1, self._seps.field)
            self._fields = parts
        return self._fields

    def field(self, number: int) -> str:
        """The raw (still escaped) text of field ``number``, or ``""``."""
        fields = self._split()
        return fields[number] if 0 < number < len(fields) else ""

    def repetitions(self, number: int) -> list[str]:
        """The raw repetitions of a field (``[]`` when empty)."""
        raw = self.field(number)
        if not raw:
            return []
        if self.name == "MSH" and number in (1, 2):
            return [raw]
        return raw.split(self._seps.repetition)

    def get(self, number: int, component: int = 0, subcomponent: int = 0, rep: int = 1) -> str:
        """The unescaped value at a position; ``component=0`` means the whole repetition."""
        reps = self.repetitions(number)
        if rep > len(reps) or rep < 1:
            return ""
        value = reps[rep - 1]
        if component:
            value = _nth(value, self._seps.component, component)
            if subcomponent:
                value = _nth(value, self._seps.subcomponent, subcomponent)
        if self.name == "MSH" and number in (1, 2):
            return value
        return unescape(value, self._seps)

    def components(self, number: int, rep: int = 1) -> list[str]:
        """The unescaped components of one repetition of a field."""
        reps = self.repetitions(number)
        if rep > len(reps) or rep < 1:
            return []
        return [unescape(c, self._seps) for c in reps[rep - 1].split(self._seps.component)]

    def __len__(self) -> int:
        return len(self._split()) - 1

    def __repr__(self) -> str:
        return f"Segment({self.name}, {len(self)} fields)"


def _nth(text: str, sep: str, n: int) -> str:
    parts = text.split(sep)
    return parts[n - 1] if n <= len(parts) else ""


class Message:
    """An HL7 v2 message read lazily from its text."""

    __slots__ = ("_segments", "separators", "text")

    def __init__(self, text: str) -> None:
        start = text.lstrip()
        self.separators = Separators.from_header(start)
        if start[:3] != "MSH":
            raise ParseError(f"expected an MSH segment, found {start[:3]!r}")
        self.text = start
        self._segments = [Segment(s, self.separators) for s in split_segments(start)]
        for number, seg in enumerate(self._segments, 1):
            if not _SEGMENT_ID.match(seg.name) or (
                len(seg.text) > 3 and seg.text[3] != self.separators.field
            ):
                # Name the position only: the text may be patient data (it reaches the NAK).
                raise ParseError(f"segment {number} does not start with a segment name")

    @classmethod
    def from_segments(cls, segments: list[Segment], separators: Separators) -> Message:
        """A message made of segments already read, joined with CR, without reading its text
        again: an edited copy's (:meth:`engine.hl7v2.editable.EditableMessage.message`), whose
        unchanged segments are the original's. The caller vouches that each segment is one
        this reader accepts, with these separators."""
        msg = cls.__new__(cls)
        msg.separators = separators
        msg._segments = segments
        msg.text = "\r".join([s.text for s in segments])
        return msg

    @property
    def segments(self) -> list[Segment]:
        return self._segments

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``."""
        for seg in self._segments:
            if seg.name == name:
                return seg
        return None

    def all(self, name: str) -> list[Segment]:
        return [seg for seg in self._segments if seg.name == name]

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._segments)

    def get(self, path: str) -> str:
        """Value at ``SEG-f[rep].c.s``, e.g. ``MSH-9.2``, ``PID-3[2].4.2``; ``""`` when absent."""
        m = _PATH.match(path)
        if m is None:
            raise ValueError(f"bad HL7 path {path!r}")
        seg = self.segment(m.group(1))
        if seg is None:
            return ""
        return seg.get(
            int(m.group(2)),
            int(m.group(4) or 0),
            int(m.group(5) or 0),
            int(m.group(3) or 1),
        )

    @property
    def msh(self) -> Segment:
        return self._segments[0]

    @property
    def message_type(self) -> str:
        return self.msh.get(9, 1)

    @property
    def trigger(self) -> str:
        return self.msh.get(9, 2)

    @property
    def control_id(self) -> str:
        return self.msh.get(10)
