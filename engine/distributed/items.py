"""Work items: which journaled message to process, and the patient whose order it keeps.

Items travel packed, up to :data:`ITEMS_PER_BODY` in one message body (a JSON list of
``[id, channel, patient key]``): one publish and one publisher confirm per intake commit
instead of one per message, and one delivery per batch for a worker. A body holding one item
alone (``[id, channel, key]``, as intakes wrote them before packing) still reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
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

    def _fields(self) -> list[int | str | None]:
        return [self.id, self.channel, self.patient_key]

    @classmethod
    def _of(cls, fields: object) -> WorkItem:
        if not isinstance(fields, list) or len(fields) != 3:
            raise ValueError("not a work item")
        ident, channel, key = fields
        if not isinstance(ident, int) or isinstance(ident, bool) or not isinstance(channel, str):
            raise ValueError("not a work item")
        return cls(ident, channel, key if isinstance(key, str) else None)

    @property
    def group(self) -> Group:
        """The unit of order (contract 4): a channel's patient, or the message alone."""
        return group_of(self.id, self.channel, self.patient_key)


#: Items in one message body at most (a worker's batch by default).
ITEMS_PER_BODY = 64


def pack(items: Sequence[WorkItem], per_body: int = ITEMS_PER_BODY) -> Iterator[bytes]:
    """The bodies carrying ``items``, in order, up to ``per_body`` items each."""
    for start in range(0, len(items), per_body):
        chunk = items[start : start + per_body]
        yield json.dumps([i._fields() for i in chunk], separators=(",", ":")).encode()


def unpack(body: bytes) -> list[WorkItem]:
    """The items of a body: a packed list, or one item alone. Raises ValueError on anything
    but what this module wrote."""
    try:
        fields = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise ValueError("not a work item") from exc
    if isinstance(fields, list) and fields and isinstance(fields[0], list):
        return [WorkItem._of(f) for f in fields]
    return [WorkItem._of(fields)]


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
