"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.db import make_engine, metadata
from engine.journal import models as journal_models
from engine.migrate import upgrade
from engine.store import models as store_models

MODELS = (journal_models, store_models)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_upgrade_to_head_matches_the_models(database_url: str) -> None:
    db = make_engine(database_url)
    try:
        upgrade(db)
        upgrade(db)  # a second run is a no-op
        with db.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"models and migrations disagree; add a revision: {diff}"
        names = set(metadata.tables)
        assert {"journal_messages", "journal_events", "store_patients"} <= names
    finally:
        db.dispose()
