"""The journal prune job: every ``engine.journal_retention.every_minutes`` the ended messages
past their retention are pruned (:mod:`engine.journal.prune`), ``batch`` per transaction.
Logs counts only.

It runs in a thread of its own (APScheduler's ``BackgroundScheduler``) in the processes that
run intake (``--role all`` or ``intake``). When several intake processes share one PostgreSQL
database, the holder of the ``journal_prune`` lease (:class:`engine.lease.Lease`) prunes; the
others skip (:class:`engine.leased_job.LeasedJob`, shared with the record's retention job).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from engine.channels.config import ChannelsFile
from engine.journal.prune import Cutoffs, Pruned, cutoffs, prune
from engine.leased_job import LeasedJob

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


class PruneJob(LeasedJob):
    job_id = JOB_ID
    lease_key = LEASE_KEY

    def __init__(self, config: ChannelsFile, db: Engine) -> None:
        super().__init__(db, config.engine.timezone)
        self.config = config

    def enabled(self) -> bool:
        return self.config.engine.journal_retention.enabled

    def trigger(self) -> tuple[str, dict[str, Any]]:
        """Every ``every_minutes``, the first run one period from now."""
        return "interval", {"minutes": self.config.engine.journal_retention.every_minutes}

    def skipped(self) -> Pruned:
        return Pruned()

    def reschedule(self, config: ChannelsFile) -> None:
        """A reloaded configuration: its retention and channels (the schedule restarted when
        the retention settings changed)."""
        old, self.config = self.config.engine, config
        self.timezone = config.engine.timezone
        if (old.journal_retention, old.timezone) != (
            config.engine.journal_retention,
            config.engine.timezone,
        ):
            self.restart()

    def work(self, now: datetime | None) -> Pruned:
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
