"""The outbox: what the engine sends on its own after a message's end state (the ZAM^Z01),
written in that end state's transaction and sent after the commit, so that it is neither lost
(a crash after the commit) nor sent for an end state that was rolled back. Rows are leased
before they are sent (``next_attempt_at`` moves ahead), so that two workers do not send one
row twice; a failure is retried with backoff."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from engine.journal.message_tables import outbox

_o = outbox.c
#: How long a row is reserved for the worker sending it.
LEASE = timedelta(seconds=60)
MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    message_id: int
    channel: str
    destination: str
    kind: str
    payload: bytes
    attempts: int


def add(
    conn: Connection,
    message_id: int,
    channel: str,
    destinations: Sequence[str],
    kind: str,
    payload: bytes,
    now: datetime,
) -> None:
    """Queue ``payload`` for each destination (in the caller's transaction)."""
    rows = [
        {
            "message_id": message_id,
            "channel": channel,
            "destination": name,
            "kind": kind,
            "payload": payload,
            "created_at": now,
            "next_attempt_at": now,
            "attempts": 0,
        }
        for name in destinations
    ]
    conn.execute(insert(outbox), rows)


def lease(
    conn: Connection, now: datetime, channels: Iterable[str], limit: int = 50
) -> list[OutboxRow]:
    """The due rows of these channels, reserved for ``LEASE`` (the caller commits)."""
    query = (
        select(_o.id, _o.message_id, _o.channel, _o.destination, _o.kind, _o.payload, _o.attempts)
        .where(_o.sent_at.is_(None), _o.next_attempt_at <= now, _o.channel.in_(list(channels)))
        .order_by(_o.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = [OutboxRow(*r) for r in conn.execute(query)]
    if rows:
        conn.execute(
            update(outbox)
            .where(_o.id.in_([r.id for r in rows]))
            .values(next_attempt_at=now + LEASE)
        )
    return rows


def sent(conn: Connection, row: OutboxRow, now: datetime) -> None:
    conn.execute(
        update(outbox).where(_o.id == row.id).values(sent_at=now, attempts=row.attempts + 1)
    )


def failed(conn: Connection, row: OutboxRow, reason: str, now: datetime) -> None:
    attempts = row.attempts + 1
    delay = min(2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
    conn.execute(
        update(outbox)
        .where(_o.id == row.id)
        .values(
            attempts=attempts,
            last_error=reason[:500],
            next_attempt_at=now + timedelta(seconds=delay),
        )
    )
