"""REFERENCE for the property tests: a transform step applied the straightforward way, as
engine/transforms/user/ops.py and steps.py did before the fast path (commit 21f6b53): each
operation's ``edit()`` on the reference EditableMessage, ``when`` tested by
``Condition.test``, dates through ``datetime.strptime``/``strftime``, the output read again
from its text. ``when`` is tested on the engine's editable message of the current text (the
conditions' code knows that class only)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from engine.errors import TransformError
from engine.hl7v2.editable import EditableMessage as Engine
from engine.hl7v2.paths import parse_field_path
from engine.hl7v2.reader import Message
from engine.transforms.user import ops
from engine.transforms.user.code_tables import load_table
from engine.transforms.user.steps import TransformStep
from tests.transform_reference import edits
from tests.transform_reference.editable import EditableMessage

Edit = Callable[[EditableMessage], None]


def edit(op: ops.Op) -> Edit:
    """``op.edit()`` as it was, on the reference message."""
    if isinstance(op, ops.SetOp):  # DefaultOp too
        dst = parse_field_path(op.field)
        only_empty = isinstance(op, ops.DefaultOp)
        if op.source is not None:
            src = parse_field_path(op.source)
            return lambda m: edits.copy(m, src, dst, move=False, only_empty=only_empty)
        value = op.value or ""
        return lambda m: edits.set_literal(m, dst, value, only_empty=only_empty)
    if isinstance(op, ops.CopyOp):  # MoveOp too
        src, dst = parse_field_path(op.source), parse_field_path(op.to)
        move = isinstance(op, ops.MoveOp)
        return lambda m: edits.copy(m, src, dst, move=move)
    if isinstance(op, ops.DeleteOp):
        path = parse_field_path(op.field)
        return lambda m: edits.delete(m, path)
    if isinstance(op, ops.DeleteSegmentsOp):
        name = op.segment
        return lambda m: edits.delete_segments(m, name)
    if isinstance(op, ops.AddSegmentOp):
        values = tuple((parse_field_path(f"{op.segment}-{k}"), v) for k, v in op.fields.items())
        seg_name, after, before = op.segment, op.after, op.before
        return lambda m: edits.add_segment(m, seg_name, values, after, before) and None
    if isinstance(op, ops.ReplaceOp):
        path, regex, repl = parse_field_path(op.field), re.compile(op.pattern), op.replacement
        return lambda m: edits.edit_leaves(m, path, lambda v: regex.sub(repl, v))
    if isinstance(op, ops.CaseOp):
        path = parse_field_path(op.field)
        change = str.upper if op.to == "upper" else str.lower
        return lambda m: edits.edit_leaves(m, path, change)
    if isinstance(op, ops.TruncateOp):
        path, length = parse_field_path(op.field), op.length
        return lambda m: edits.edit_leaves(m, path, lambda v: v[:length])
    if isinstance(op, ops.DateOp):
        return _date(op)
    if isinstance(op, ops.MapOp):
        path, table = parse_field_path(op.field), load_table(op.table)
        policy = op.unmapped
        unmapped = (
            policy.default
            if isinstance(policy, ops.UnmappedDefault)
            else (None if policy == "keep" else "")
        )
        return lambda m: edits.map_codes(m, path, table, unmapped)
    raise AssertionError(f"no reference for {type(op).__name__}")


def _date(op: ops.DateOp) -> Edit:
    path, formats, out, strict = (
        parse_field_path(op.field),
        op.formats,
        op.to,
        op.invalid == "dead_letter",
    )

    def change(value: str) -> str:
        for fmt in formats:
            try:
                return datetime.strptime(value, fmt).strftime(out)
            except ValueError:
                continue
        if strict:
            raise TransformError(f"{path}: a value matches none of the date formats")
        return value

    return lambda m: edits.edit_leaves(m, path, change)


def build(step: TransformStep) -> Callable[[Message], Message]:
    """The step's function, the reference way."""
    built: list[Edit] = []
    for op in step.ops:
        one, when = edit(op), op.when
        if when is None:
            built.append(one)
        else:
            built.append(_guarded(one, when))

    def transform(msg: Message) -> Message:
        editable = EditableMessage(msg)
        for e in built:
            e(editable)
        return Message(editable.text()) if editable.changed else msg

    return transform


def _guarded(one: Edit, when: ops.Condition) -> Edit:
    """``when`` tested by ``Condition.test`` (uncompiled) on the message as it is now (the
    engine's editable message of it: conditions know that class only)."""

    def guarded(msg: EditableMessage) -> None:
        if when.test(Engine(Message(msg.text()))):
            one(msg)

    return guarded
