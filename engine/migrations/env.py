"""Alembic environment: the engine passes its SQLAlchemy engine in ``config.attributes``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

import engine.journal.models
import engine.store.models
from engine.db import metadata

_ = engine.journal.models


def run_migrations_online() -> None:
    db: Engine = context.config.attributes["engine"]
    with db.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
