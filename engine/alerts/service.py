"""The alert service: an APScheduler job evaluates every rule every ``check_seconds``, records
what fired or resolved, and notifies.

It runs in a thread of its own (``BackgroundScheduler``), so that the journal queries never
block an asyncio loop, and it serves the embedded engine, an intake and a console alike.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import make_url
from sqlalchemy.engine import Engine

from engine.alerts import history
from engine.alerts.history import Transition
from engine.alerts.notify import Notifier, deliver, notifiers
from engine.alerts.rules import Context, Finding, SourceStates, evaluate
from engine.channels.config import ChannelsFile
from engine.journal.journal import utcnow

log = structlog.get_logger("engine.alerts")


class NoSources:
    """For a process that runs no source (a console): source rules are left to the others."""

    def source_up(self, channel: str) -> bool | None:
        return None


class AlertService:
    def __init__(
        self,
        config: ChannelsFile,
        db: Engine,
        sources: SourceStates | None = None,
        targets: list[Notifier] | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.sources = sources or NoSources()
        self.targets = notifiers(config.alerts.notify) if targets is None else targets
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        """Evaluate now, then every ``check_seconds`` (nothing to do without rules)."""
        if not self.config.alerts.rules or self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(timezone=ZoneInfo(self.config.engine.timezone))
        scheduler.add_job(
            self._job,
            "interval",
            seconds=self.config.alerts.check_seconds,
            next_run_time=datetime.now(ZoneInfo("UTC")),
            max_instances=1,
            coalesce=True,
            id="alerts",
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info("alerts_started", rules=len(self.config.alerts.rules))

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def check(self, now: datetime | None = None) -> list[Transition]:
        """One evaluation: what fired and what resolved (already recorded and notified)."""
        now = now or utcnow()
        with self.db.connect() as conn:
            ctx = Context(
                conn=conn,
                now=now,
                channels=tuple(c.name for c in self.config.channels if c.enabled),
                timezone=ZoneInfo(self.config.engine.timezone),
                sources=self.sources,
                database_file=_sqlite_file(self.db),
            )
            findings: list[Finding] = []
            for rule in self.config.alerts.rules:
                findings += evaluate(rule, ctx)
            conn.rollback()  # the reads' transaction; apply writes in its own
            names = {r.name for r in self.config.alerts.rules}
            transitions = history.apply(conn, findings, names, now)
        deliver(self.targets, transitions)
        return transitions

    def _job(self) -> None:
        try:
            self.check()
        except Exception:  # the next run tries again; a job that raises would only be logged
            log.exception("alerts_check_failed")


def _sqlite_file(db: Engine) -> Path | None:
    url = make_url(str(db.url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)
