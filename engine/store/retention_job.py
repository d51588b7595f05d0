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
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from engine.lease import Lease
from engine.logs import error_fields
from engine.store.retention import purge
from engine.store.retention_settings import RetentionSettings

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


class RetentionJob:
    def __init__(self, settings: RetentionSettings, db: Engine, timezone: str) -> None:
        self.settings = settings
        self.db = db
        self.timezone = timezone
        self.lease = Lease(db, LEASE_KEY, JOB_ID)
        self._scheduler: BackgroundScheduler | None = None
        self._started = False  # by the engine (the job itself may be disabled)
        self._stopping = threading.Event()

    @property
    def scheduler(self) -> BackgroundScheduler | None:
        return self._scheduler

    def start(self) -> None:
        """Schedule the daily run (nothing when ``engine.retention.enabled`` is false)."""
        self._started = True
        self._stopping.clear()
        if not self.settings.enabled or self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(timezone=ZoneInfo(self.timezone))
        scheduler.add_job(
            self._job,
            "cron",
            hour=self.settings.hour,
            minute=self.settings.minute,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=MISFIRE_SECONDS,
            id=JOB_ID,
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info("retention_scheduled", at=self.settings.at, timezone=self.timezone)

    def stop(self) -> None:
        """Wait for a run in progress (it ends after its current batch), end the lease."""
        self._started = False
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.lease.release()

    def reschedule(self, settings: RetentionSettings, timezone: str) -> None:
        """A reloaded configuration: the job at its new time (if the engine started it)."""
        if (settings, timezone) == (self.settings, self.timezone):
            return
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.settings, self.timezone = settings, timezone
        if self._started:
            self.start()

    def run(self, now: datetime | None = None) -> Run:
        """One run, as the scheduler makes it: purge when this node holds the lease."""
        if not self.lease.held():
            log.info("retention_skipped", reason="another node holds the retention lease")
            return Run(skipped=True)
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

    def _job(self) -> None:
        try:
            self.run()
        except Exception as exc:  # tomorrow's run tries again; say it, without the data
            log.error("retention_failed", **error_fields(exc))
