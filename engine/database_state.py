"""Whether the engine's database answers, since when, and why not: one log line when an outage
starts, one when it ends (with its length and what it cost), counts in between.

The writer thread reports each commit and pipeline slice, the group committer each commit
deadline missed; :attr:`engine.runtime.wiring.Engine.database_state` is the one instance a readiness
probe reads. At start, :func:`wait_for_database` retries with backoff until the journal is
writable (``database_waiting``), as the AMQP source waits for its broker.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from engine.db import database_where, is_outage, outage_reason

log = structlog.get_logger("engine.database")

#: Seconds between two tries at start: doubling from the first to the last.
WAIT_FIRST, WAIT_MAX = 0.5, 10.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The database's state for a readiness probe."""

    database: str
    up: bool
    since: datetime
    reason: str = ""
    failures: int = 0


class DatabaseState:
    """Thread-safe: the writer thread and the event loop both report."""

    def __init__(self, url: str) -> None:
        self.where = database_where(url)
        self._sqlite_file = self.where if url.startswith("sqlite") else ""
        self._lock = threading.Lock()
        self._up = True
        self._since = datetime.now(UTC)
        self._down_at = 0.0
        self._reason = ""
        self._failures = 0
        self._refused = 0

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self.where, self._up, self._since, self._reason, self._failures)

    @property
    def up(self) -> bool:
        return self._up

    def reason(self, exc: BaseException) -> str:
        reason = outage_reason(exc)
        if reason == "cannot_open" and self._sqlite_file and not _writable(self._sqlite_file):
            return "read_only"  # SQLite cannot make its -shm file next to a read-only database
        return reason

    def failed(self, exc: BaseException, during: str, messages: int = 0) -> bool:
        """Report a failure; True when it is an outage (logged once, then counted), False for
        an error of the statement itself, which the caller logs."""
        if not is_outage(exc):
            return False
        self.down(self.reason(exc), during, messages, error=type(exc).__name__)
        return True

    def down(self, reason: str, during: str, messages: int = 0, error: str = "") -> None:
        with self._lock:
            self._failures += 1
            self._refused += messages
            if not self._up:
                return
            self._up, self._since, self._down_at = False, datetime.now(UTC), time.monotonic()
            self._reason = reason
        fields = {"error": error} if error else {}
        log.error(
            "database_unavailable", database=self.where, reason=reason, during=during, **fields
        )

    def succeeded(self) -> None:
        if self._up:  # the common case, without the lock
            return
        with self._lock:
            if self._up:
                return
            seconds = round(time.monotonic() - self._down_at, 3)
            failures, refused, reason = self._failures, self._refused, self._reason
            self._up, self._since, self._reason = True, datetime.now(UTC), ""
            self._failures = self._refused = 0
        log.warning(
            "database_recovered",
            database=self.where,
            reason=reason,
            seconds=seconds,
            failures=failures,
            messages_refused=refused,
        )


def wait_for_database(
    db: Engine, state: DatabaseState, prepare: Callable[[], None], stop: threading.Event
) -> bool:
    """Run ``prepare`` (the migrations) and check that the journal is writable, retrying with
    backoff while the database is out (``database_waiting``, with why). False when ``stop``
    was set first. Errors that are not an outage (a failing migration) are raised."""
    delay, attempt, waited = WAIT_FIRST, 0, time.monotonic()
    while not stop.is_set():
        attempt += 1
        try:
            prepare()
            _check_writable(db)
        except SQLAlchemyError as exc:
            if not is_outage(exc):
                raise
            log.warning(
                "database_waiting",
                database=state.where,
                reason=state.reason(exc),
                error=type(exc).__name__,
                attempt=attempt,
                retry_in=delay,
            )
            state.down(state.reason(exc), "start")
            if stop.wait(delay):
                return False
            delay = min(WAIT_MAX, delay * 2)
            continue
        if attempt > 1:
            log.info("database_ready", database=state.where, waited=time.monotonic() - waited)
        state.succeeded()
        return True
    return False


def _check_writable(db: Engine) -> None:
    """A PostgreSQL standby (or a read-only default) takes connections but no journal rows."""
    if db.dialect.name != "postgresql":
        return  # SQLite's begin (BEGIN IMMEDIATE) in the migrations took the write lock
    with db.connect() as conn:
        if conn.execute(text("SHOW transaction_read_only")).scalar() == "on":
            raise OperationalError("SHOW transaction_read_only", {}, _ReadOnly("read-only"))


class _ReadOnly(Exception):
    sqlstate = "25006"


def _writable(path: str) -> bool:
    directory = os.path.dirname(os.path.abspath(path))
    return os.access(path, os.W_OK) and os.access(directory, os.W_OK)
