"""A read-only engine for the admin listener's queries.

The engine's SQLite connections begin every transaction with ``BEGIN IMMEDIATE`` (engine.db:
a writer must hold the lock from the start). A count over millions of rows run that way would
hold the write lock, and the journal's intake would wait for it. Reads here run in SQLite's
own autocommit mode instead (a WAL snapshot per statement, no lock), on connections that
refuse writes. PostgreSQL needs none of this: the same engine serves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


def read_engine(db: Engine) -> Engine:
    if db.dialect.name != "sqlite":
        return db
    reader = create_engine(
        db.url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8
    )

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # no implicit BEGIN: each statement reads alone
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA query_only=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    event.listen(reader, "connect", on_connect)
    return reader
