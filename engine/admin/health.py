"""``/healthz`` (the process answers) and ``/readyz`` (it can take messages)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.engine import Engine

from engine.admin.state import EngineState

PROBE_TIMEOUT = 2.0


def _journal_writable(db: Engine) -> str | None:
    """None when a write transaction can start now (SQLite: its lock is taken; PostgreSQL: the
    server is not a read-only standby), else why not."""
    try:
        with db.begin() as conn:  # SQLite: BEGIN IMMEDIATE (engine.db) takes the write lock
            if conn.dialect.name == "postgresql":
                if conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                    return "journal: the database is a read-only standby"
                if conn.execute(text("SHOW transaction_read_only")).scalar() == "on":
                    return "journal: transactions are read-only"
            conn.rollback()
    except Exception as exc:  # any failure means not ready; the class says which
        return f"journal: not writable ({type(exc).__name__})"
    return None


async def readiness(db: Engine, state: EngineState | None) -> list[str]:
    """Why this process is not ready (empty: ready)."""
    reasons: list[str] = []
    try:
        found = await asyncio.wait_for(asyncio.to_thread(_journal_writable, db), PROBE_TIMEOUT)
    except TimeoutError:
        found = f"journal: no write lock within {PROBE_TIMEOUT:g} s"
    if found:
        reasons.append(found)
    if state is None:
        return reasons
    for source in state.sources():
        if not source.bound:
            reasons.append(f"channel {source.channel}: source not bound ({source.state})")
    if state.broker_connected() is False:
        reasons.append("broker: not connected")
    return reasons
