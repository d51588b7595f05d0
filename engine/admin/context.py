"""What every admin route needs, held on the app: database, settings, the runtime's state and
control (when this process runs channels), and the journal figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from engine.admin.figures import FiguresCache
from engine.admin.settings import AdminSettings
from engine.admin.state import ChannelControl, EngineState
from engine.channels.models import ChannelsFile


@dataclass
class AdminContext:
    config: ChannelsFile
    db: Engine
    settings: AdminSettings
    state: EngineState | None
    control: ChannelControl | None
    figures: FiguresCache

    @classmethod
    def build(
        cls,
        config: ChannelsFile,
        db: Engine,
        state: EngineState | None = None,
        control: ChannelControl | None = None,
    ) -> AdminContext:
        settings = config.engine.admin or AdminSettings()
        holder: dict[str, ChannelsFile] = {"config": config}
        figures = FiguresCache(
            db,
            lambda: [c.name for c in holder["config"].channels if c.enabled],
            settings.metrics_refresh_seconds,
        )
        return cls(config, db, settings, state, control, figures)

    @property
    def lockout(self) -> timedelta:
        return timedelta(minutes=self.settings.lockout_minutes)

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(minutes=self.settings.session_minutes)
