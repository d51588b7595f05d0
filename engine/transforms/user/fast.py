"""The fast path of the value operations (case, replace, truncate, date, map): one field of
each segment a path names, edited in place.

Most paths name one place in a field without repetitions (``OBX[*]-3``, ``OBX[*]-6.1``,
``MSH-7``): the field's new text is then a function of its old text alone, computed without the
position lists of :meth:`EditableMessage.slots`, and remembered (``memo``) for the next
segment or message with the same text: a lab sends the same units and codes all day. The memo
is bounded, and the operations do not keep one for patient segments or free text (OBX-5, NTE:
their values stay in no cache) nor for dates (their values are all different). Any other place
(a repetition, a subcomponent, a field with repetitions) takes the general way, ``general``,
which gives the same result (tests/unit/test_transform_fast_path.py compares them with a
reference).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.hl7v2.editable import HEADERS, EditableMessage, EditableSegment, joined, placed
from engine.hl7v2.escape import unescape
from engine.hl7v2.paths import EVERY, FieldPath

#: A field's raw text -> its new raw text (may raise for the segment: an unmapped code).
FieldEdit = Callable[[EditableMessage, EditableSegment, str], str]
#: The general way for one segment.
General = Callable[[EditableMessage, EditableSegment], None]
#: Per delimiters (escaping depends on them): a field's raw text -> its new raw text.
Memo = dict[str, dict[str, str]]

#: Entries a memo keeps per delimiters before it starts again.
MEMO_SIZE = 4096


def fast(path: FieldPath) -> bool:
    """The path names at most a component of each repetition: the fast path applies (to the
    fields without repetitions, where every repetition and the first are the same place)."""
    return not path.subcomponent


def each_field(
    msg: EditableMessage,
    path: FieldPath,
    compute: FieldEdit,
    general: General,
    memo: Memo | None,
) -> None:
    """Give field ``path.field`` of each segment ``path`` names the text ``compute`` makes of
    it (``fast(path)`` must hold)."""
    seps = msg.separators
    number, rsep = path.field, seps.repetition
    single = path.rep in (None, 1, EVERY)
    cache = None
    if memo is not None:
        cache = memo.get(msg.delimiters)
        if cache is None:
            cache = memo[msg.delimiters] = {}
    segs = msg.named(path.segment)
    if path.occurrence != EVERY:
        segs = segs[path.occurrence - 1 : path.occurrence]
    for seg in segs:
        # Split as far as the field only (this loop is the hot path).
        fields = seg.fields_upto(seps, number)
        field = fields[number] if number < len(fields) else ""
        if not single or rsep in field or (number < 3 and seg.name in HEADERS):
            general(msg, seg)
            continue
        if cache is None:
            new = compute(msg, seg, field)
        else:
            found = cache.get(field)
            if found is None:
                found = compute(msg, seg, field)
                if len(cache) >= MEMO_SIZE:
                    cache.clear()
                cache[field] = found
            new = found
        if new != field:  # then the field was not empty: it is in ``fields``
            fields[number] = new
            seg.touched()
            msg.changed = True


def general_reps(msg: EditableMessage, seg: EditableSegment, path: FieldPath) -> list[int]:
    """The repetitions of one segment the general way edits: each for ``[*]``, else the one
    named (the first when none is)."""
    if path.rep != EVERY:
        return [path.rep or 1]
    return [rep or 1 for s, rep in msg.slots(path) if s is seg]


def leaf_edit(path: FieldPath, change: Callable[[str], str]) -> FieldEdit:
    """``change`` applied to the value ``path`` names in a field without repetitions (each
    component and subcomponent of it when the path names the whole field)."""
    component = path.component

    def compute(msg: EditableMessage, seg: EditableSegment, field: str) -> str:
        if not field:
            return field
        csep = msg.separators.component
        comps = field.split(csep) if component and csep in field else None
        if comps is None:
            leaf = field if component < 2 else ""
        else:
            leaf = comps[component - 1] if component <= len(comps) else ""
        if not leaf:
            return field
        new = changed(msg, leaf, change)
        if new == leaf:
            return field
        if component:
            return joined(placed(comps or [field], component - 1, new), csep)
        return new

    return compute


def changed(msg: EditableMessage, raw: str, change: Callable[[str], str]) -> str:
    """``change`` applied to each component and subcomponent of a raw text."""
    seps = msg.separators
    if seps.component not in raw and seps.subcomponent not in raw:
        return msg.escape(change(unescape(raw, seps)))
    return seps.component.join(
        seps.subcomponent.join(
            msg.escape(change(unescape(s, seps))) if s else s for s in c.split(seps.subcomponent)
        )
        for c in raw.split(seps.component)
    )
