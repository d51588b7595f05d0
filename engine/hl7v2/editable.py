"""An HL7 v2 message that transforms can edit, then write out again.

The lazy reader (:mod:`engine.hl7v2.reader`) stays read-only: a message is edited through this
copy, which splits a segment into fields only when a step touches it and writes untouched
segments back as they came (the reader's own segment objects, not read again: see
:meth:`EditableMessage.message`). Values are escaped on the way in and unescaped on the way out
(:mod:`engine.hl7v2.escape`); raw texts (``read``/``write``) keep their separators, so that a
copy carries a field's structure. Segments are found through an index by name, built on first
use and dropped when segments are added or removed (change ``segments`` only through
:meth:`EditableMessage.insert` and :meth:`EditableMessage.remove`). The segments and the
placing helpers are in :mod:`engine.hl7v2.editable_segment`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from engine.hl7v2.editable_segment import HEADERS, EditableSegment, joined, nth, placed
from engine.hl7v2.escape import escape, unescape
from engine.hl7v2.paths import EVERY, FieldPath, parse_field_path
from engine.hl7v2.reader import Message, Segment


class EditableMessage:
    """A message being transformed. ``changed`` tells whether any write happened."""

    __slots__ = ("_by_name", "_special", "changed", "delimiters", "segments", "separators")

    def __init__(self, msg: Message) -> None:
        self.separators = msg.separators
        self.segments = [EditableSegment(s.text, s) for s in msg.segments]
        self.changed = False
        #: The five delimiters as one text (a cheap key for caches of escaped values).
        self.delimiters = msg.separators.field + msg.separators.encoding_characters
        self._special = _special(self.delimiters)
        self._by_name: dict[str, list[EditableSegment]] | None = None

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
        if parsed.rep != EVERY:  # one place per segment: the first segment's
            segs = self.targets(parsed)
            return self.value(segs[0], parsed, parsed.rep) if segs else ""
        found = self.slots(parsed)
        return self.value(found[0][0], parsed, found[0][1]) if found else ""

    def all_values(self, path: FieldPath) -> list[str]:
        return [self.value(seg, path, rep) for seg, rep in self.slots(path)]

    # -- positions -------------------------------------------------------------------------

    def named(self, name: str) -> list[EditableSegment]:
        """The segments called ``name``, in order (the index's list: do not change it)."""
        index = self._by_name
        if index is None:
            index = self._by_name = {}
            for seg in self.segments:
                found = index.get(seg.name)
                if found is None:
                    index[seg.name] = [seg]
                else:
                    found.append(seg)
        return index.get(name, _NONE)

    def names(self) -> list[str]:
        """The names of the segments, each once."""
        self.named("MSH")
        assert self._by_name is not None
        return list(self._by_name)

    def targets(self, path: FieldPath) -> list[EditableSegment]:
        """The segments a path names (its occurrence, or every one for ``*``)."""
        found = self.named(path.segment)
        if path.occurrence == EVERY:
            return found
        return found[path.occurrence - 1 : path.occurrence]

    def slots(self, path: FieldPath) -> list[tuple[EditableSegment, int | None]]:
        """Each (segment, repetition) a path names; the repetition is None when the path names
        none (a whole field)."""
        found = self.targets(path)
        rep = path.rep
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
        fields = seg.fields(self.separators)
        number = path.field
        raw = fields[number] if number < len(fields) else ""
        if (rep is None and not path.component) or (number < 3 and seg.name in HEADERS):
            return raw
        seps = self.separators
        if seps.repetition in raw:
            raw = nth(raw, seps.repetition, rep or 1)
        elif rep is not None and rep > 1:
            return ""
        if path.component:
            raw = nth(raw, seps.component, path.component)
            if path.subcomponent:
                raw = nth(raw, seps.subcomponent, path.subcomponent)
        return raw

    def value(self, seg: EditableSegment, path: FieldPath, rep: int | None) -> str:
        raw = self.read(seg, path, rep if rep is not None or path.component else 1)
        return raw if _fixed(seg, path.field) else unescape(raw, self.separators)

    def write(self, seg: EditableSegment, path: FieldPath, rep: int | None, raw: str) -> None:
        """Put raw text at a position, adding the fields, repetitions and components it needs."""
        if _fixed(seg, path.field):
            raise ValueError(f"{seg.name}-{path.field} holds the delimiters: it cannot be edited")
        fields = seg.fields(self.separators)
        number = path.field
        if len(fields) <= number:
            if not raw:
                return  # blanking a field that is not there
            fields.extend([""] * (number + 1 - len(fields)))
        old = fields[number]
        new = raw if rep is None and path.component == 0 else self._inside(old, path, rep, raw)
        if new != old:
            fields[number] = new
            seg.touched()
            self.changed = True

    def put_field(self, seg: EditableSegment, number: int, raw: str) -> None:
        """Replace field ``number`` (not MSH-1 or MSH-2) of a segment whose fields are split,
        with every repetition: ``write`` for a whole field, without the position checks."""
        fields = seg.fields_upto(self.separators, number)
        if number >= len(fields):
            if not raw:
                return
            fields.extend([""] * (number + 1 - len(fields)))
        if fields[number] != raw:
            fields[number] = raw
            seg.touched()
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
            return joined(placed(reps, index, raw), seps.repetition)
        comps = reps[index].split(seps.component) if index < len(reps) else [""]
        if path.subcomponent:
            c = path.component - 1
            subs = comps[c].split(seps.subcomponent) if c < len(comps) else [""]
            raw = joined(placed(subs, path.subcomponent - 1, raw), seps.subcomponent)
        comp_text = joined(placed(comps, path.component - 1, raw), seps.component)
        return joined(placed(reps, index, comp_text), seps.repetition)

    def _field(self, seg: EditableSegment, number: int) -> str:
        fields = seg.fields(self.separators)
        return fields[number] if 0 < number < len(fields) else ""

    # -- segments --------------------------------------------------------------------------

    def remove(self, doomed: Iterable[EditableSegment]) -> int:
        gone = {id(s) for s in doomed}
        if not gone:
            return 0
        kept = [s for s in self.segments if id(s) not in gone]
        removed = len(self.segments) - len(kept)
        if removed:
            self.segments = kept
            self._by_name = None
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
        self._by_name = None
        self.changed = True

    def new_segment(self, name: str) -> EditableSegment:
        return EditableSegment(name)

    def text(self) -> str:
        seps = self.separators
        return "\r".join(s.text(seps) for s in self.segments)

    def message(self) -> Message:
        """The message as it is now, for the reader: the segments left unchanged are the
        original's segment objects (read-only), not split and checked again."""
        seps = self.separators
        join = seps.field.join
        out = []
        for seg in self.segments:
            source = seg.source
            if source is None:
                fields = seg._fields
                if seg.name in HEADERS or fields is None:
                    source = Segment(seg.text(seps), seps)
                else:
                    source = Segment(join(fields), seps)
            out.append(source)
        return Message.from_segments(out, seps)


_NONE: list[EditableSegment] = []

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
    return field in (1, 2) and seg.name in HEADERS


__all__ = ["HEADERS", "EditableMessage", "EditableSegment", "joined", "placed"]
