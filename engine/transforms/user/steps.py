"""The ``transform`` step: field operations applied in order to one editable copy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.hl7v2.editable import EditableMessage
from engine.hl7v2.reader import Message
from engine.transforms.user.ops import AnyOp


class TransformStep(BaseModel):
    """Edit the message: set, copy, move, delete, default, replace, case, truncate, date, map,
    delete_segments, add_segment (README "Transforms")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["transform"]
    ops: tuple[AnyOp, ...] = Field(min_length=1, description="applied in order")

    def build(self) -> Callable[[Message], Message]:
        edits = tuple(op.build() for op in self.ops)

        def transform(msg: Message) -> Message:
            editable = EditableMessage(msg)
            for edit in edits:
                edit(editable)
            return editable.message() if editable.changed else msg

        return transform
