"""What the field operations do to an :class:`EditableMessage` (their configuration is in
:mod:`engine.transforms.user.ops`).

Value operations (case, replace, truncate, date, default) read and write values, escaped and
unescaped on the way; on a path that names a whole field or repetition they act on each of its
components (and subcomponents), so that the separators stay where they are. A path without a
repetition index means the first repetition, except for set, copy, move and delete of a whole
field, which take the field with every repetition.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.hl7v2.editable import EditableMessage, EditableSegment, joined, placed
from engine.hl7v2.escape import unescape
from engine.hl7v2.paths import EVERY, FieldPath
from engine.transforms.user import fast
from engine.transforms.user.code_tables import CodeTable, Escaped
from engine.transforms.user.errors import UnmappedCode

#: Segments whose values are patient data: a reason about them never quotes a value.
PATIENT_SEGMENTS = frozenset({"PID", "PD1", "NK1", "MRG", "GT1", "IN1", "IN2", "ZFD"})

Edit = Callable[[EditableMessage], None]


def position(msg: EditableMessage, seg: EditableSegment, path: FieldPath) -> str:
    """``OBX[4]-3``: which segment an error is about (a position, never a value)."""
    occurrence = next(i for i, s in enumerate(msg.named(seg.name), 1) if s is seg)
    return f"{seg.name}[{occurrence}]-{path.field}"


def edit_leaves(
    msg: EditableMessage,
    path: FieldPath,
    change: Callable[[str], str],
    memo: fast.Memo | None = None,
) -> None:
    """Apply ``change`` to every non-empty value a path names (each component of a field);
    ``memo``: see :mod:`engine.transforms.user.fast` (``change`` must then be a function of
    the value alone)."""
    leaf_editor(path, change, memo)(msg)


def leaf_editor(
    path: FieldPath, change: Callable[[str], str], memo: fast.Memo | None = None
) -> Edit:
    """:func:`edit_leaves` of a path, prepared once (the operations build it at load)."""
    if fast.fast(path):
        compute, general = fast.leaf_edit(path, change), _leaves(path, change)
        return lambda msg: fast.each_field(msg, path, compute, general, memo)

    def slow(msg: EditableMessage) -> None:
        for seg, rep in msg.slots(path):
            _edit_leaf(msg, seg, path, rep or 1, change)

    return slow


def _leaves(path: FieldPath, change: Callable[[str], str]) -> fast.General:
    def general(msg: EditableMessage, seg: EditableSegment) -> None:
        for rep in fast.general_reps(msg, seg, path):
            _edit_leaf(msg, seg, path, rep, change)

    return general


def _edit_leaf(
    msg: EditableMessage,
    seg: EditableSegment,
    path: FieldPath,
    rep: int,
    change: Callable[[str], str],
) -> None:
    raw = msg.read(seg, path, rep)
    if raw:
        new = fast.changed(msg, raw, change)
        if new != raw:
            msg.write(seg, path, rep, new)


def set_literal(msg: EditableMessage, path: FieldPath, value: str, only_empty: bool) -> None:
    raw = msg.escape(value)
    number = path.field
    if path.rep is None and not path.component and number > 2:  # a whole field: in place
        seps = msg.separators
        for seg in msg.targets(path):
            fields = seg.fields_upto(seps, number)
            if only_empty and number < len(fields) and fields[number]:
                continue
            msg.put_field(seg, number, raw)
        return
    for seg, rep in msg.slots(path):
        if only_empty and msg.read(seg, path, rep):
            continue
        msg.write(seg, path, rep, raw)


def copy(
    msg: EditableMessage, src: FieldPath, dst: FieldPath, *, move: bool, only_empty: bool = False
) -> None:
    """Copy the raw text of ``src`` to ``dst`` (``move``: then blank ``src``). With ``src`` on
    every segment of a type (``OBX[*]-5``), each segment copies its own value; otherwise one
    value goes to every place ``dst`` names. A wider source put in a narrower place gives its
    first repetition, component or subcomponent."""
    pairwise = src.occurrence == EVERY
    if not pairwise and src.whole_field and dst.whole_field and min(src.field, dst.field) > 2:
        _copy_field(msg, src, dst, move, only_empty)
        return
    source: tuple[EditableSegment, int | None] | None = None
    if not pairwise:
        found = msg.slots(src)
        if not found:
            return  # no such segment: nothing to copy
        source = found[0]
    for seg, rep in msg.slots(dst):
        if only_empty and msg.read(seg, dst, rep):
            continue
        from_seg, from_rep = (seg, src.rep) if source is None else source
        msg.write(
            seg, dst, rep, narrow(msg, msg.read(from_seg, src, from_rep), src.depth, dst.depth)
        )
        if move and pairwise:
            msg.write(seg, src, src.rep, "")
    if move and source is not None:
        msg.write(source[0], src, source[1], "")


def _copy_field(
    msg: EditableMessage, src: FieldPath, dst: FieldPath, move: bool, only_empty: bool
) -> None:
    """``copy`` of a whole field (every repetition) to whole fields, in place."""
    found = msg.targets(src)
    if not found:
        return
    seps, source = msg.separators, found[0]
    fields = source.fields_upto(seps, src.field)
    raw = fields[src.field] if src.field < len(fields) else ""
    for seg in msg.targets(dst):
        there = seg.fields_upto(seps, dst.field)
        if only_empty and dst.field < len(there) and there[dst.field]:
            continue
        msg.put_field(seg, dst.field, raw)
    if move:
        msg.put_field(source, src.field, "")


def narrow(msg: EditableMessage, raw: str, src_depth: int, dst_depth: int) -> str:
    seps = msg.separators
    for depth, sep in ((0, seps.repetition), (1, seps.component), (2, seps.subcomponent)):
        if src_depth <= depth < dst_depth and sep in raw:
            raw = raw.split(sep, 1)[0]
    return raw


def delete(msg: EditableMessage, path: FieldPath) -> None:
    for seg, rep in msg.slots(path):
        msg.write(seg, path, rep, "")


def map_codes(
    msg: EditableMessage,
    path: FieldPath,
    table: CodeTable,
    unmapped: str | None,
    memo: fast.Memo | None = None,
) -> None:
    """Replace each code a path names with the table's. On a field or repetition (a coded
    element, ``code^text^system``) component 1 is the code, and components 2 and 3 take the
    table's ``to_text`` and ``to_system`` when it has those columns.

    ``unmapped``: None keeps an unknown code, ``""`` dead-letters the message, another text
    replaces the code. ``memo``: see :mod:`engine.transforms.user.fast`."""
    code_mapper(path, table, unmapped, memo)(msg)


def code_mapper(
    path: FieldPath, table: CodeTable, unmapped: str | None, memo: fast.Memo | None = None
) -> Edit:
    """:func:`map_codes` of a path, prepared once (the operations build it at load)."""

    def general(msg: EditableMessage, seg: EditableSegment) -> None:
        escaped = table.escaped(msg.delimiters, msg.escape)
        for rep in fast.general_reps(msg, seg, path):
            _map_one(msg, seg, path, rep, table, escaped, unmapped)

    if not fast.fast(path):

        def slow(msg: EditableMessage) -> None:
            escaped = table.escaped(msg.delimiters, msg.escape)
            for seg, rep in msg.slots(path):
                _map_one(msg, seg, path, rep or 1, table, escaped, unmapped)

        return slow
    component = path.component
    at = component - 1 if component else 0

    def compute(msg: EditableMessage, seg: EditableSegment, field: str) -> str:
        seps = msg.separators
        csep = seps.component
        comps = field.split(csep)
        raw = comps[at] if at < len(comps) else ""
        code = unescape(raw, seps) if seps.escape in raw else raw
        if not code:
            return field
        target = table.escaped(msg.delimiters, msg.escape)(code)
        if target is None:
            if unmapped is None:
                return field
            if unmapped == "":
                raise UnmappedCode(_unmapped_reason(msg, seg, path, code, table))
            new = msg.escape(unmapped)
        else:
            new = target[0]
            if not component:
                if table.has_text:
                    _put(comps, 1, target[1])
                if table.has_system:
                    _put(comps, 2, target[2])
        if component:
            return joined(placed(comps, at, new), csep)
        comps[0] = new
        return csep.join(comps)

    return lambda msg: fast.each_field(msg, path, compute, general, memo)


def _map_one(
    msg: EditableMessage,
    seg: EditableSegment,
    path: FieldPath,
    rep: int,
    table: CodeTable,
    escaped: Callable[[str], Escaped | None],
    unmapped: str | None,
) -> None:
    seps = msg.separators
    coded = path.component == 0
    raw = msg.read(seg, path, rep)
    parts = raw.split(seps.component) if coded else [raw]
    code = unescape(parts[0], seps)
    if not code:
        return
    target = escaped(code)
    if target is None:
        if unmapped is None:
            return
        if unmapped == "":
            raise UnmappedCode(_unmapped_reason(msg, seg, path, code, table))
        parts[0] = msg.escape(unmapped)
    else:
        parts[0] = target[0]
        if coded and table.has_text:
            _put(parts, 1, target[1])
        if coded and table.has_system:
            _put(parts, 2, target[2])
    msg.write(seg, path, rep, seps.component.join(parts))


def _put(parts: list[str], index: int, value: str) -> None:
    if index >= len(parts):
        parts.extend([""] * (index + 1 - len(parts)))
    parts[index] = value


def _unmapped_reason(
    msg: EditableMessage, seg: EditableSegment, path: FieldPath, code: str, table: CodeTable
) -> str:
    where = position(msg, seg, path)
    # Codes are not patient data, but a PID value may be: its code is not quoted.
    shown = "a code" if seg.name in PATIENT_SEGMENTS else f"code {code!r}"
    return f"{where}: {shown} is not in code table {table.path}"


def delete_segments(msg: EditableMessage, name: str) -> None:
    if name.endswith("*"):
        prefix = name[:-1]
        msg.remove([s for n in msg.names() if n.startswith(prefix) for s in msg.named(n)])
    else:
        msg.remove(msg.named(name))


def add_segment(
    msg: EditableMessage,
    name: str,
    values: tuple[tuple[FieldPath, str], ...],
    after: str | None,
    before: str | None,
) -> EditableSegment:
    seg = msg.new_segment(name)
    msg.insert(seg, after, before)
    for path, value in values:
        msg.set_value(seg, path, path.rep, value)
    return seg
