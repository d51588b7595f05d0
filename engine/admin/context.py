"""What every admin route needs, held on the app: database, settings, the runtime's state and
control (when this process runs channels), and the journal figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from engine.admin.figures import FiguresCache
from engine.admin.reader import read_engine
from engine.admin.state import ChannelControl, EngineState
from engine.channels.admin_settings import AdminSettings
from engine.channels.config import ChannelsFile


@dataclass
class AdminContext:
    config: ChannelsFile
    db: Engine
    settings: AdminSettings
    state: EngineState | None
    control: ChannelControl | None
    figures: FiguresCache
    #: Reads (searches, counts, listings) go here: on SQLite they must not take the write lock.
    reader: Engine

    @classmethod
    def build(
        cls,
        config: ChannelsFile,
        db: Engine,
        state: EngineState | None = None,
        control: ChannelControl | None = None,
    ) -> AdminContext:
        settings = config.engine.admin or AdminSettings()
        reader = read_engine(db)
        ctx: AdminContext
        figures = FiguresCache(
            reader,
            lambda: [c.name for c in ctx.config.channels if c.enabled],
            settings.metrics_refresh_seconds,
        )
        ctx = cls(config, db, settings, state, control, figures, reader)
        return ctx

    @property
    def lockout(self) -> timedelta:
        return timedelta(minutes=self.settings.lockout_minutes)

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(minutes=self.settings.session_minutes)
