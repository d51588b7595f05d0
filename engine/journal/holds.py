"""Messages held for a patient the store does not know yet (error 902), and their release.

A held message waits on identity keys (``ins:<matricule>``, ``local:<value>^<authority>``).
When an ADT creates or qualifies a patient answering to one of them, its held messages go back
to ``received`` in the same transaction, and the worker takes them in their original order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from engine.journal.message_tables import State, events, holds, messages

#: Set in ``Connection.info`` when a release happened (the released ids): the worker ends its
#: batch there, so that the released messages (older) run before the patient's later messages
#: (contract 4); a distributed worker hands them out as work items after its commit.
RELEASED = "aiguillage.released"


def park(conn: Connection, message_id: int, keys: Sequence[str]) -> None:
    """Record what a held message waits for (in the caller's transaction)."""
    conn.execute(delete(holds).where(holds.c.message_id == message_id))
    if keys:
        conn.execute(insert(holds), [{"message_id": message_id, "key": k} for k in set(keys)])


def release(conn: Connection, keys: Sequence[str], now: datetime) -> list[int]:
    """Put the messages held on any of ``keys`` back in the pipeline; returns their ids."""
    if not keys:
        return []
    ids = sorted(
        set(conn.execute(select(holds.c.message_id).where(holds.c.key.in_(list(keys)))).scalars())
    )
    if not ids:
        return []
    conn.execute(delete(holds).where(holds.c.message_id.in_(ids)))
    released = list(
        conn.execute(
            update(messages)
            .where(messages.c.id.in_(ids), messages.c.state == State.HELD)
            .values(state=State.RECEIVED, updated_at=now, next_attempt_at=None)
            .returning(messages.c.id)
        ).scalars()
    )
    if released:
        conn.info.setdefault(RELEASED, []).extend(released)
        conn.execute(
            insert(events),
            [
                {
                    "message_id": i,
                    "at": now,
                    "state": State.RECEIVED,
                    "attempt": 0,
                    "stage": "identity",
                    "code": "released",
                    "reason": "its patient is now known",
                    "actor": "engine",
                }
                for i in released
            ],
        )
    return sorted(released)
