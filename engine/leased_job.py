"""A periodic job run by APScheduler in a thread of its own, on the one node holding its lease
(:class:`engine.lease.Lease`): the record store's retention purge and the journal's pruning.

A subclass says whether it is enabled, when it runs (an APScheduler trigger) and what one run
does (:meth:`LeasedJob.work`, given the stop event its batches check); this class schedules it,
skips a run on a node without the lease, logs a failure without the data, and restarts the
schedule when a reload changes it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from engine.lease import Lease
from engine.logs import error_fields

log = structlog.get_logger("engine.jobs")


class LeasedJob:
    #: APScheduler's job id, the lease's name and the prefix of the job's log events.
    job_id: ClassVar[str]
    #: The PostgreSQL advisory lock key of the lease.
    lease_key: ClassVar[int]

    def __init__(self, db: Engine, timezone: str) -> None:
        self.db = db
        self.timezone = timezone
        self.lease = Lease(db, self.lease_key, self.job_id)
        self._scheduler: BackgroundScheduler | None = None
        self._started = False  # by the engine (the job itself may be disabled)
        self._stopping = threading.Event()

    def enabled(self) -> bool:
        raise NotImplementedError

    def trigger(self) -> tuple[str, dict[str, Any]]:
        """APScheduler's trigger name and its arguments."""
        raise NotImplementedError

    def work(self, now: datetime | None) -> Any:
        """One run on the lease holder; returns what it did (logged by the subclass)."""
        raise NotImplementedError

    def skipped(self) -> Any:
        """What :meth:`run` returns on a node without the lease."""
        raise NotImplementedError

    @property
    def scheduler(self) -> BackgroundScheduler | None:
        return self._scheduler

    def start(self) -> None:
        """Schedule the job (nothing when it is disabled)."""
        self._started = True
        self._stopping.clear()
        if not self.enabled() or self._scheduler is not None:
            return
        kind, arguments = self.trigger()
        scheduler = BackgroundScheduler(timezone=ZoneInfo(self.timezone))
        scheduler.add_job(
            self._job, kind, max_instances=1, coalesce=True, id=self.job_id, **arguments
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info(f"{self.job_id}_scheduled", trigger=kind, timezone=self.timezone, **arguments)

    def stop(self) -> None:
        """Wait for a run in progress (it ends after its current batch), end the lease."""
        self._started = False
        self._stopping.set()
        self._unschedule()
        self.lease.release()

    def restart(self) -> None:
        """A reloaded configuration: the job on its new schedule (if the engine started it)."""
        self._unschedule()
        if self._started:
            self.start()

    def run_soon(self) -> None:
        """Have the scheduler run the job now (tests, operators)."""
        if self._scheduler is not None:
            self._scheduler.modify_job(self.job_id, next_run_time=datetime.now(UTC))

    def run(self, now: datetime | None = None) -> Any:
        """One run, as the scheduler makes it: the work when this node holds the lease."""
        if not self.lease.held():
            log.info(f"{self.job_id}_skipped", reason=f"another node holds the {self.job_id} lease")
            return self.skipped()
        return self.work(now)

    def _unschedule(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def _job(self) -> None:
        try:
            self.run()
        except Exception as exc:  # the next run tries again; say it, without the data
            log.error(f"{self.job_id}_failed", **error_fields(exc))
