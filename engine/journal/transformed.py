"""The transformed forms of messages, kept beside their raw bytes.

When a channel's (or a route's) transform and python steps change a message, the bytes each
destination received are kept here, one row per message and destination; the journal row
keeps the raw bytes as received. ``trace`` shows both with a field-level diff, and a replay
starts again from the raw bytes, replacing these rows with the new run's forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    ForeignKey,
    LargeBinary,
    String,
    Table,
    bindparam,
    delete,
    select,
)

from engine.db import metadata
from engine.fastsql import FastStatement, insert_into
from engine.journal.message_tables import Id

transformed = Table(
    "journal_transformed",
    metadata,
    Column(
        "message_id", Id, ForeignKey("journal_messages.id"), primary_key=True, autoincrement=False
    ),
    Column("destination", String(64), primary_key=True, autoincrement=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

_INSERT = insert_into(transformed)
_DELETE = FastStatement(delete(transformed).where(transformed.c.message_id == bindparam("id_")))


def record(conn: Connection, message_id: int, forms: Mapping[str, bytes], now: datetime) -> None:
    """Replace the message's transformed forms with ``forms`` (destination -> bytes; a
    destination that got the raw bytes is left out)."""
    _DELETE.execute(conn, {"id_": message_id})
    if forms:
        _INSERT.executemany(
            conn,
            [
                {"message_id": message_id, "destination": d, "payload": p, "created_at": now}
                for d, p in forms.items()
            ],
        )


def forms(conn: Connection, message_id: int) -> dict[str, bytes]:
    """Destination -> the bytes it received, for the destinations that got a transformed form."""
    rows = conn.execute(
        select(transformed.c.destination, transformed.c.payload)
        .where(transformed.c.message_id == message_id)
        .order_by(transformed.c.destination)
    )
    return {r[0]: bytes(r[1]) for r in rows}
