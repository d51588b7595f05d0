"""Which node runs a periodic job when several engine processes share one database.

On PostgreSQL the node whose session holds an advisory lock (``pg_try_advisory_lock``) is the
one: it keeps that session open, so it stays the one until it stops or loses its connection;
then the lock is free and the next node to try takes it. SQLite serves one process: it always
holds the lease. No table and no clock: PostgreSQL ends the lease with the session.
"""

from __future__ import annotations

import structlog
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from engine.logs import error_fields

log = structlog.get_logger("engine.lease")

_TAKE = text("SELECT pg_try_advisory_lock(:key)")
#: A one-bigint advisory key shows in pg_locks as classid = high 32 bits, objid = low 32 bits.
_HELD = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
    "AND granted AND classid::bigint = 0 AND objid::bigint = :key AND objsubid = 1"
)


class Lease:
    """``held()``: whether this process runs the job now (taking the lease when it is free)."""

    def __init__(self, db: Engine, key: int, name: str) -> None:
        if not 0 < key < 2**31:
            raise ValueError("the lease key must be a positive 31-bit number")
        self.db = db
        self.key = key
        self.name = name
        self._conn: Connection | None = None

    def held(self) -> bool:
        if self.db.dialect.name != "postgresql":
            return True
        if self._conn is not None and self._still_held(self._conn):
            return True
        self.release()
        conn = self.db.connect()
        try:
            taken = bool(conn.execute(_TAKE, {"key": self.key}).scalar_one())
            conn.commit()
        except DBAPIError as exc:
            log.warning("lease_unavailable", lease=self.name, **error_fields(exc))
            conn.invalidate()
            conn.close()
            return False
        if not taken:
            conn.close()  # the session holds no lock: back to the pool as it is
            return False
        self._conn = conn
        log.info("lease_taken", lease=self.name)
        return True

    def release(self) -> None:
        """End the session that holds the lock (PostgreSQL frees it with the session)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.invalidate()  # never back to the pool still holding the lock
        finally:
            conn.close()

    def _still_held(self, conn: Connection) -> bool:
        try:
            held = int(conn.execute(_HELD, {"key": self.key}).scalar_one()) > 0
            conn.commit()
        except DBAPIError:  # the database restarted: the session, and the lock, are gone
            return False
        return held
