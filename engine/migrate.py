"""Database migrations (Alembic), run at engine start and by ``aiguillage db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the journal and record store schema to ``revision`` (by default every head:
    independent features may add migrations side by side from one parent)."""
    command.upgrade(alembic_config(engine), revision)
