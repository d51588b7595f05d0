"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.channels.config import ChannelConfig
from engine.channels.loader import load_channels
from engine.db import make_engine
from engine.migrate import upgrade


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database (journal and record store) in a temporary directory."""
    engine = make_engine(f"sqlite:///{tmp_path / 'engine.db'}", durability="normal")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for an engine: SQLite, then PostgreSQL (a schema of its own)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'engine.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def migrated_db(store_url: str) -> Iterator[Engine]:
    """A database migrated to the head, on SQLite then PostgreSQL (``store_url``)."""
    engine = make_engine(store_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def hospital() -> ChannelConfig:
    """The repository's channel taking ORU^R01 (MLLP into the record store)."""
    config = load_channels(Path(__file__).resolve().parents[2] / "channels.yaml")
    return next(c for c in config.channels if "ORU^R01" in c.accept)
