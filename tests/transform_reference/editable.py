"""REFERENCE COPY for the property tests (tests/unit/test_transform_fast_path.py): the
straightforward EditableMessage of engine/hl7v2/editable.py as it was before the transform fast
path (commit 21f6b53). Do not optimise it: the engine's fast path must give what this gives.

An HL7 v2 message that transforms can edit, then write out again.

The lazy reader (:mod:`engine.hl7v2.reader`) stays read-only: a message is edited through this
copy, which splits a segment into fields only when a step touches it and writes untouched
segments back as they came. Values are escaped on the way in and unescaped on the way out
(:mod:`engine.hl7v2.escape`); raw texts (``read``/``write``) keep their separators, so that a
copy carries a field's structure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from engine.hl7v2.escape import escape, unescape
from engine.hl7v2.paths import EVERY, FieldPath, parse_field_path
from engine.hl7v2.reader import Message
from engine.hl7v2.separators import Separators

#: Segments whose MSH-1 is the field separator itself (it is not between two fields).
_HEADERS = ("MSH", "FHS", "BHS")


class EditableSegment:
    """One segment: its text until a field is written, then its fields (``[0]`` is the name,
    and for MSH ``[1]`` the field separator, as the reader numbers them)."""

    __slots__ = ("_fields", "_text", "name")

    def __init__(self, text: str) -> None:
        self.name = text[:3]
        self._text: str | None = text
        self._fields: list[str] | None = None

    def fields(self, seps: Separators) -> list[str]:
        if self._fields is None:
            assert self._text is not None
            parts = self._text.split(seps.field)
            if self.name in _HEADERS:
                parts.insert(1, seps.field)
            self._fields = parts
            self._text = None
        return self._fields

    def text(self, seps: Separators) -> str:
        if self._text is not None:
            return self._text
        assert self._fields is not None
        parts = self._fields
        if self.name in _HEADERS:
            parts = [parts[0], *parts[2:]]
        return seps.field.join(parts)


class EditableMessage:
    """A message being transformed. ``changed`` tells whether any write happened."""

    __slots__ = ("_special", "changed", "delimiters", "segments", "separators")

    def __init__(self, msg: Message) -> None:
        self.separators = msg.separators
        self.segments = [EditableSegment(s.text) for s in msg.segments]
        self.changed = False
        #: The five delimiters as one text (a cheap key for caches of escaped values).
        self.delimiters = msg.separators.field + msg.separators.encoding_characters
        self._special = _special(self.delimiters)

    def escape(self, value: str) -> str:
        """``value`` made safe inside one component (most values need nothing: a search is
        cheaper than the translation)."""
        return escape(value, self.separators) if self._special.search(value) else value

    # -- what conditions read (engine.routes.conditions.Routable) ------------------------

    @property
    def message_type(self) -> str:
        return self.get("MSH-9.1")

    @property
    def trigger(self) -> str:
        return self.get("MSH-9.2")

    def get(self, path: str | FieldPath) -> str:
        """The first value a path names, unescaped; ``""`` when absent."""
        parsed = _parsed(path) if isinstance(path, str) else path
        found = self.slots(parsed)
        return self.value(found[0][0], parsed, found[0][1]) if found else ""

    def all_values(self, path: FieldPath) -> list[str]:
        return [self.value(seg, path, rep) for seg, rep in self.slots(path)]

    # -- positions -------------------------------------------------------------------------

    def named(self, name: str) -> list[EditableSegment]:
        return [s for s in self.segments if s.name == name]

    def slots(self, path: FieldPath) -> list[tuple[EditableSegment, int | None]]:
        """Each (segment, repetition) a path names; the repetition is None when the path names
        none (a whole field)."""
        name, occurrence, rep = path.segment, path.occurrence, path.rep
        if occurrence == EVERY:
            found = [s for s in self.segments if s.name == name]
        else:
            found = self.named(name)[occurrence - 1 : occurrence]
        if rep != EVERY:
            return [(seg, rep) for seg in found]
        out: list[tuple[EditableSegment, int | None]] = []
        for seg in found:
            raw = self._field(seg, path.field)
            count = len(raw.split(self.separators.repetition)) if raw else 0
            out.extend((seg, r) for r in range(1, count + 1))
        return out

    # -- raw text and values at a position -------------------------------------------------

    def read(self, seg: EditableSegment, path: FieldPath, rep: int | None) -> str:
        """The raw (escaped) text at a position: the whole field when ``rep`` is None and the
        path names no component."""
        fields = seg._fields if seg._fields is not None else seg.fields(self.separators)
        number = path.field
        raw = fields[number] if number < len(fields) else ""
        if (rep is None and not path.component) or (number < 3 and seg.name in _HEADERS):
            return raw
        seps = self.separators
        if seps.repetition in raw:
            raw = _nth(raw, seps.repetition, rep or 1)
        elif rep is not None and rep > 1:
            return ""
        if path.component:
            raw = _nth(raw, seps.component, path.component)
            if path.subcomponent:
                raw = _nth(raw, seps.subcomponent, path.subcomponent)
        return raw

    def value(self, seg: EditableSegment, path: FieldPath, rep: int | None) -> str:
        raw = self.read(seg, path, rep if rep is not None or path.component else 1)
        return raw if _fixed(seg, path.field) else unescape(raw, self.separators)

    def write(self, seg: EditableSegment, path: FieldPath, rep: int | None, raw: str) -> None:
        """Put raw text at a position, adding the fields, repetitions and components it needs."""
        if _fixed(seg, path.field):
            raise ValueError(f"{seg.name}-{path.field} holds the delimiters: it cannot be edited")
        fields = seg.fields(self.separators)
        if len(fields) <= path.field:
            if not raw:
                return  # blanking a field that is not there
            fields.extend([""] * (path.field + 1 - len(fields)))
        old = fields[path.field]
        new = raw if rep is None and path.component == 0 else self._inside(old, path, rep, raw)
        if new != old:
            fields[path.field] = new
            self.changed = True

    def set_value(self, seg: EditableSegment, path: FieldPath, rep: int | None, value: str) -> None:
        self.write(seg, path, rep, self.escape(value))

    def _inside(self, field: str, path: FieldPath, rep: int | None, raw: str) -> str:
        seps = self.separators
        index = (rep or 1) - 1
        if path.component == 0 and index == 0 and seps.repetition not in field:
            return raw  # the usual case: a field without repetitions
        reps = field.split(seps.repetition) if field else [""]
        if path.component == 0:
            return _joined(_placed(reps, index, raw), seps.repetition)
        comps = reps[index].split(seps.component) if index < len(reps) else [""]
        if path.subcomponent:
            c = path.component - 1
            subs = comps[c].split(seps.subcomponent) if c < len(comps) else [""]
            raw = _joined(_placed(subs, path.subcomponent - 1, raw), seps.subcomponent)
        comp_text = _joined(_placed(comps, path.component - 1, raw), seps.component)
        return _joined(_placed(reps, index, comp_text), seps.repetition)

    def _field(self, seg: EditableSegment, number: int) -> str:
        fields = seg.fields(self.separators)
        return fields[number] if 0 < number < len(fields) else ""

    # -- segments --------------------------------------------------------------------------

    def remove(self, doomed: Iterable[EditableSegment]) -> int:
        gone = {id(s) for s in doomed}
        kept = [s for s in self.segments if id(s) not in gone]
        removed = len(self.segments) - len(kept)
        if removed:
            self.segments = kept
            self.changed = True
        return removed

    def insert(
        self, seg: EditableSegment, after: str | None = None, before: str | None = None
    ) -> None:
        """After the last segment named ``after``, before the first named ``before``, else at
        the end."""
        names = [s.name for s in self.segments]
        at = len(names)
        if after is not None and after in names:
            at = len(names) - names[::-1].index(after)
        elif before is not None and before in names:
            at = names.index(before)
        self.segments.insert(at, seg)
        self.changed = True

    def new_segment(self, name: str) -> EditableSegment:
        return EditableSegment(name)

    def text(self) -> str:
        seps = self.separators
        return "\r".join(s.text(seps) for s in self.segments)


_SPECIALS: dict[str, re.Pattern[str]] = {}


def _special(key: str) -> re.Pattern[str]:
    """What :func:`engine.hl7v2.escape.escape` changes: delimiters and control characters."""
    found = _SPECIALS.get(key)
    if found is None:
        found = _SPECIALS[key] = re.compile(f"[{re.escape(key)}\\x00-\\x1f\\x7f]")
    return found


#: Conditions name paths as text: parsed once each.
_parsed = lru_cache(maxsize=4096)(parse_field_path)


def _fixed(seg: EditableSegment, field: int) -> bool:
    """MSH-1 and MSH-2: the delimiters themselves."""
    return field in (1, 2) and seg.name in _HEADERS


def _nth(text: str, sep: str, n: int) -> str:
    if sep not in text:
        return text if n == 1 else ""
    parts = text.split(sep)
    return parts[n - 1] if n <= len(parts) else ""


def _placed(parts: list[str], index: int, value: str) -> list[str]:
    if index >= len(parts):
        parts.extend([""] * (index + 1 - len(parts)))
    parts[index] = value
    return parts


def _joined(parts: list[str], sep: str) -> str:
    """Trailing empty parts dropped (``a^^`` is ``a``), so that a blanked component leaves no
    trace."""
    while len(parts) > 1 and not parts[-1]:
        parts.pop()
    return sep.join(parts)
