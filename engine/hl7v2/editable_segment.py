"""The segments of an :class:`engine.hl7v2.editable.EditableMessage`, and the helpers that
place a value among a field's repetitions, components or subcomponents."""

from __future__ import annotations

from engine.hl7v2.reader import Segment
from engine.hl7v2.separators import Separators

#: Segments whose MSH-1 is the field separator itself (it is not between two fields).
HEADERS = ("MSH", "FHS", "BHS")


class EditableSegment:
    """One segment: its text, and its fields once split (``[0]`` is the name, and for MSH
    ``[1]`` the field separator, as the reader numbers them). The text stays until a field is
    written; ``source`` is the reader's segment it came from while it is unchanged."""

    __slots__ = ("_fields", "_tail", "_text", "name", "source")

    def __init__(self, text: str, source: Segment | None = None) -> None:
        self.name = text[:3]
        self._text: str | None = text
        self._fields: list[str] | None = None
        #: The last of ``_fields`` is the rest of the segment, not split yet.
        self._tail = False
        self.source = source

    def fields(self, seps: Separators) -> list[str]:
        """The fields, split once (reading them leaves the segment unchanged)."""
        parts = self._fields
        if parts is None:
            assert self._text is not None
            parts = self._text.split(seps.field)
            if self.name in HEADERS:
                parts.insert(1, seps.field)
            self._fields = parts
        elif self._tail:
            parts.extend(parts.pop().split(seps.field))
            self._tail = False
        return parts

    def fields_upto(self, seps: Separators, number: int) -> list[str]:
        """The fields split as far as field ``number`` at least: the last item may be the rest
        of the segment, unsplit (joined with the field separator, the items still give the
        segment's text). Write in place only the items up to ``number``."""
        parts = self._fields
        if parts is None and number > 2:
            assert self._text is not None
            header = self.name in HEADERS
            parts = self._text.split(seps.field, number if header else number + 1)
            self._tail = seps.field in parts[-1]
            if header:
                parts.insert(1, seps.field)
            self._fields = parts
            return parts
        if parts is None or (self._tail and number >= len(parts) - 1):
            return self.fields(seps)
        return parts

    def touched(self) -> None:
        """A field was written: the text is made again from the fields."""
        self._text = None
        self.source = None

    def text(self, seps: Separators) -> str:
        if self._text is not None:
            return self._text
        assert self._fields is not None
        parts = self._fields
        if self.name in HEADERS:
            parts = [parts[0], *parts[2:]]
        return seps.field.join(parts)


def nth(text: str, sep: str, n: int) -> str:
    if sep not in text:
        return text if n == 1 else ""
    parts = text.split(sep)
    return parts[n - 1] if n <= len(parts) else ""


def placed(parts: list[str], index: int, value: str) -> list[str]:
    """``parts`` with ``value`` at ``index`` (0-based), padded with empty parts."""
    if index >= len(parts):
        parts.extend([""] * (index + 1 - len(parts)))
    parts[index] = value
    return parts


def joined(parts: list[str], sep: str) -> str:
    """Trailing empty parts dropped (``a^^`` is ``a``), so that a blanked component leaves no
    trace."""
    while len(parts) > 1 and not parts[-1]:
        parts.pop()
    return sep.join(parts)
