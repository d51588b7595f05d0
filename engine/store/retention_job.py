"""The daily retention job (DOMAIN.md §6, CSP L1111-18): at ``engine.retention.at`` (in
``engine.timezone``) the records closed, or of patients deceased, more than 10 years ago are
purged by :func:`engine.store.retention.purge`, ``batch`` records per transaction, so that the
journal's writers never wait long for the database. Logs counts only.

It runs in a thread of its own (APScheduler's ``BackgroundScheduler``) in the processes that
run intake (``--role all`` or ``intake``), never in a worker or a console. When several intake
processes share one PostgreSQL database, the one holding the ``retention`` lease
(:class:`engine.lease.Lease`) purges; the others skip. A purge is idempotent anyway: a record
once purged is never due again.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from engine.channels.record_retention import RetentionSettings
from engine.leased_job import LeasedJob
from engine.store.retention import purge

log = structlog.get_logger("engine.retention")

JOB_ID = "retention"
LEASE_KEY = 0x52455445  # "RETE": the advisory lock of the retention lease
#: A run started after its time by up to this (an engine busy or just started) still runs.
MISFIRE_SECONDS = 3600
#: Rest between two batches. On SQLite a writer waiting for the lock polls it at most every
#: 100 ms (its busy handler's longest sleep): without a rest the next batch takes the lock
#: again first, and intake waits for the whole purge (bench/retention.py measured it).
PAUSE_SECONDS = 0.12


@dataclass(frozen=True, slots=True)
class Run:
    """What one run purged (``skipped``: another node holds the lease)."""

    records: int = 0
    batches: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    skipped: bool = False


def purge_in_batches(
    db: Engine,
    now: datetime,
    batch: int,
    stop: threading.Event | None = None,
    pause: float = PAUSE_SECONDS,
) -> Run:
    """Purge every record due at ``now``, ``batch`` records per transaction, ``pause``
    seconds apart (until ``stop`` is set: the rest waits for the next run)."""
    stop = stop or threading.Event()
    rows: Counter[str] = Counter()
    records = batches = 0
    seen: set[int] = set()
    while not stop.is_set():
        with db.begin() as conn:
            found = purge(conn, now, batch)
        if not found.patients:
            break
        if seen.intersection(found.patients):  # never loop on a record that does not go
            log.error("retention_stuck", records=len(seen.intersection(found.patients)))
            break
        seen.update(found.patients)
        records += len(found.patients)
        batches += 1
        rows.update(found.rows)
        if len(found.patients) < batch or stop.wait(pause):
            break
    return Run(records, batches, dict(rows))


class RetentionJob(LeasedJob):
    job_id = JOB_ID
    lease_key = LEASE_KEY

    def __init__(self, settings: RetentionSettings, db: Engine, timezone: str) -> None:
        super().__init__(db, timezone)
        self.settings = settings

    def enabled(self) -> bool:
        return self.settings.enabled

    def trigger(self) -> tuple[str, dict[str, Any]]:
        """Daily at ``engine.retention.at``."""
        daily = {"hour": self.settings.hour, "minute": self.settings.minute}
        return "cron", {**daily, "misfire_grace_time": MISFIRE_SECONDS}

    def skipped(self) -> Run:
        return Run(skipped=True)

    def reschedule(self, settings: RetentionSettings, timezone: str) -> None:
        """A reloaded configuration: the job at its new time (if the engine started it)."""
        if (settings, timezone) != (self.settings, self.timezone):
            self.settings, self.timezone = settings, timezone
            self.restart()

    def work(self, now: datetime | None) -> Run:
        started = datetime.now(UTC)
        done = purge_in_batches(self.db, now or started, self.settings.batch, self._stopping)
        seconds = round((datetime.now(UTC) - started).total_seconds(), 3)
        log.info(
            "retention_done",
            records=done.records,
            batches=done.batches,
            seconds=seconds,
            **done.rows,
        )
        return done
