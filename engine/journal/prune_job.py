"""The journal prune job: every ``engine.journal_retention.every_minutes`` the ended messages
past their retention are pruned (:mod:`engine.journal.prune`), ``batch`` per transaction.
Logs counts only.

It runs in a thread of its own (APScheduler's ``BackgroundScheduler``) in the processes that
run intake (``--role all`` or ``intake``). When several intake processes share one PostgreSQL
database, the holder of the ``journal_prune`` lease (:class:`engine.lease.Lease`) prunes; the
others skip. Self-contained on purpose (the record store's retention job has its own
scheduler).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from engine.channels.models import ChannelsFile
from engine.journal.prune import Cutoffs, Pruned, cutoffs, prune
from engine.lease import Lease
from engine.logs import error_fields

log = structlog.get_logger("engine.journal.prune")

JOB_ID = "journal_prune"
LEASE_KEY = 0x4A505255  # "JPRU": the advisory lock of the prune lease


def reuse_windows(config: ChannelsFile) -> dict[str, float | None]:
    """Each channel's duplicate reuse window (seconds; None: none of its own)."""
    out: dict[str, float | None] = {}
    for channel in config.channels:
        policy = getattr(channel.source, "duplicates", None)
        out[channel.name] = getattr(policy, "reuse_window_seconds", None)
    return out


def config_cutoffs(config: ChannelsFile, now: datetime, days: float | None = None) -> Cutoffs:
    """The cutoffs of the configured retention (or ``days``) and the channels' windows."""
    retention = config.engine.journal_retention
    return cutoffs(now, retention.days if days is None else days, reuse_windows(config))


def vacuum(db: Engine) -> None:
    """PostgreSQL: VACUUM (ANALYZE) the journal. Its space (pruned rows, and the old version
    every state change leaves) is reused, and the planner gets statistics: without them it
    answered the claim with scans over dead index entries, a cost growing with the journal
    (``bench/RESULTS.md``, "Journal growth"). Autovacuum does this where it runs; a server
    with it off (as the project's VM) gets it here. It takes no lock that holds writes back."""
    with db.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM (ANALYZE) journal_messages"
        )


class PruneJob:
    def __init__(self, config: ChannelsFile, db: Engine) -> None:
        self.config = config
        self.db = db
        self.lease = Lease(db, LEASE_KEY, JOB_ID)
        self._scheduler: BackgroundScheduler | None = None
        self._stopping = threading.Event()

    @property
    def scheduler(self) -> BackgroundScheduler | None:
        return self._scheduler

    def start(self) -> None:
        """Prune every ``every_minutes``, the first run one period from now (nothing when
        ``engine.journal_retention.enabled`` is false)."""
        settings = self.config.engine.journal_retention
        self._stopping.clear()
        if not settings.enabled or self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(timezone=ZoneInfo(self.config.engine.timezone))
        scheduler.add_job(
            self._job,
            "interval",
            minutes=settings.every_minutes,
            max_instances=1,
            coalesce=True,
            id=JOB_ID,
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "journal_prune_scheduled", days=settings.days, every_minutes=settings.every_minutes
        )

    def stop(self) -> None:
        """Wait for a run in progress (it ends after its current batch), end the lease."""
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.lease.release()

    def reschedule(self, config: ChannelsFile) -> None:
        """A reloaded configuration: its retention and channels (the job restarted on a new
        schedule when the engine started it)."""
        old, self.config = self.config.engine.journal_retention, config
        if self._scheduler is not None and old != config.engine.journal_retention:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
            self.start()

    def run_soon(self) -> None:
        """Have the scheduler run the job now (tests, operators)."""
        if self._scheduler is not None:
            self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    def run(self, now: datetime | None = None) -> Pruned:
        """One run, as the scheduler makes it: prune when this node holds the lease."""
        if not self.lease.held():
            log.info("journal_prune_skipped", reason="another node holds the prune lease")
            return Pruned()
        settings = self.config.engine.journal_retention
        cut = config_cutoffs(self.config, now or datetime.now(UTC))
        done = prune(self.db, cut, settings.batch, self._stopping)
        if self.db.dialect.name == "postgresql" and not self._stopping.is_set():
            vacuum(self.db)
        log.info(
            "journal_pruned",
            messages=done.messages,
            batches=done.batches,
            seconds=done.seconds,
            older_than_days=settings.days,
            **{f"{name}_rows": n for name, n in done.rows.items() if name != "messages"},
        )
        return done

    def _job(self) -> None:
        try:
            self.run()
        except Exception as exc:  # the next run tries again; say it, without the data
            log.error("journal_prune_failed", **error_fields(exc))
