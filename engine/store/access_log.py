"""The record's access log: append-only (an UPDATE is refused by a trigger on SQLite and
PostgreSQL), one row per read or write of a record by a person or the CLI.

The engine's own filing of documents is not copied here: it is read from ``store_documents``
(stored_at, filed_by) when the log is shown, so the write path stays untouched and the two
cannot disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    Boolean,
    Column,
    Connection,
    Index,
    String,
    Table,
    Text,
    event,
    literal,
    select,
    union_all,
)

from engine.db import metadata
from engine.fastsql import insert_into
from engine.record.model import Actor
from engine.store.documents import documents
from engine.store.record_core import Id, UtcDateTime, text_column

access_log = Table(
    "record_access_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, nullable=False),  # no FK: the log outlives nothing but the record
    Column("at", UtcDateTime, nullable=False),
    Column("actor", Text, nullable=False),  # rpps:<n>, patient, representative:<n>, operator:<n>
    Column("role", String(16), nullable=False),
    Column("action", String(32), nullable=False),  # read_record, read_document, export, ...
    text_column("target"),  # a document id, an RPPS...
    Column("emergency", Boolean, nullable=False, default=False),
    text_column("reason"),
    Index(None, "patient_id", "id"),
)

#: Triggers that refuse UPDATE (DELETE stays possible for the retention purge only).
SQLITE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS record_access_log_append_only BEFORE UPDATE ON "
    "record_access_log BEGIN SELECT RAISE(ABORT, 'record_access_log is append-only'); END"
)
POSTGRES_FUNCTION = (
    "CREATE OR REPLACE FUNCTION record_access_log_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'record_access_log is append-only'; END $$ LANGUAGE plpgsql"
)
POSTGRES_TRIGGER = (
    "CREATE TRIGGER record_access_log_append_only BEFORE UPDATE ON record_access_log "
    "FOR EACH ROW EXECUTE FUNCTION record_access_log_append_only()"
)
for _dialect, _statements in (
    ("sqlite", (SQLITE_TRIGGER,)),
    ("postgresql", (POSTGRES_FUNCTION, POSTGRES_TRIGGER)),
):
    for _sql in _statements:  # tables made from the metadata (tests) get them too
        _ddl = DDL(_sql)  # type: ignore[no-untyped-call]
        event.listen(access_log, "after_create", _ddl.execute_if(dialect=_dialect))

#: Compiled once, run on the DBAPI cursor: one statement in the reader's transaction, without
#: SQLAlchemy's per-execution work (every read of a record writes one).
_INSERT = insert_into(access_log)


def append(
    conn: Connection,
    patient_id: int,
    actor: Actor,
    action: str,
    now: datetime,
    target: str = "",
    emergency: bool = False,
    reason: str = "",
) -> None:
    _INSERT.execute(
        conn,
        {
            "patient_id": patient_id,
            "at": now,
            "actor": actor.who,
            "role": actor.role.value,
            "action": action,
            "target": target,
            "emergency": emergency,
            "reason": reason,
        },
    )


def entries(conn: Connection, patient_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """The log newest first, with the engine's filing of documents ("system" role)."""
    a, d = access_log.c, documents.c
    logged = select(a.at, a.actor, a.role, a.action, a.target, a.emergency, a.reason).where(
        a.patient_id == patient_id
    )
    filed = select(
        d.stored_at.label("at"),
        d.filed_by.label("actor"),
        literal("system").label("role"),
        literal("file_document").label("action"),
        d.document_id.label("target"),
        literal(False).label("emergency"),
        literal("").label("reason"),
    ).where(d.patient_id == patient_id)
    both = union_all(logged, filed).subquery()
    rows = conn.execute(select(both).order_by(both.c.at.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
