"""Database engines and the shared SQLAlchemy metadata (journal and record store)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine

DEFAULT_URL = "sqlite:///var/aiguillage.db"
URL_ENV = "AIGUILLAGE_DATABASE_URL"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def database_url(configured: str | None = None) -> str:
    """``AIGUILLAGE_DATABASE_URL`` wins over the configured URL, which wins over the default."""
    return os.environ.get(URL_ENV) or configured or DEFAULT_URL


def make_engine(url: str, *, durability: str = "full", **kwargs: Any) -> Engine:
    """An engine with the settings the journal's durability relies on.

    SQLite runs in WAL mode; ``durability="full"`` (``synchronous=FULL``) makes a committed
    transaction survive a power loss, ``"normal"`` only a process crash (contract 1 asks for the
    latter at least). Foreign keys are enforced.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )
        synchronous = {"full": "FULL", "normal": "NORMAL"}[durability]

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_conn, synchronous)

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, synchronous: str) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see below).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock when the transaction starts: a WAL reader that upgrades to a writer
    # after another connection committed fails with SQLITE_BUSY at once, whatever the timeout.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
