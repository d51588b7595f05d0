"""Work items: which journaled message to process, and the patient whose order it keeps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from engine.intake.sink import Result
from engine.journal.claim import Group, group_of
from engine.journal.message_tables import State, messages
from engine.journal.records import NewMessage


@dataclass(frozen=True, slots=True)
class WorkItem:
    id: int
    channel: str
    patient_key: str | None
    #: Process the group up to this id; 0: up to the item's own (a sweep takes whole groups).
    upto: int = 0

    @property
    def last(self) -> int:
        return self.upto or self.id

    def encode(self) -> bytes:
        return json.dumps([self.id, self.channel, self.patient_key]).encode()

    @classmethod
    def decode(cls, body: bytes) -> WorkItem:
        """Raises ValueError on anything but an item this module wrote."""
        try:
            ident, channel, key = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise ValueError("not a work item") from exc
        if not isinstance(ident, int) or not isinstance(channel, str):
            raise ValueError("not a work item")
        return cls(ident, channel, key if isinstance(key, str) else None)

    @property
    def group(self) -> Group:
        """The unit of order (contract 4): a channel's patient, or the message alone."""
        return group_of(self.id, self.channel, self.patient_key)


def items_of(rows: Sequence[NewMessage], results: Sequence[Result]) -> list[WorkItem]:
    """The work items of an intake commit: new messages waiting for the pipeline."""
    out = []
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, Exception) or result.duplicate or row.state != State.RECEIVED:
            continue
        out.append(WorkItem(result.id, row.channel, row.patient_key))
    return out


def work_items(conn: Connection, ids: Sequence[int]) -> list[WorkItem]:
    """The work items of journaled messages (operator replays, released holds)."""
    m = messages.c
    rows = conn.execute(select(m.id, m.channel, m.patient_key).where(m.id.in_(list(ids))))
    return [WorkItem(r.id, r.channel, r.patient_key) for r in rows]
