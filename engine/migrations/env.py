"""Alembic environment: the engine passes its SQLAlchemy engine in ``config.attributes``."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Engine

import engine.admin.tables
import engine.alerts.tables
import engine.journal.message_tables
import engine.journal.search
import engine.journal.transformed
import engine.security.senders
import engine.store.access_log
import engine.store.documents
import engine.store.identity_cell
import engine.store.record_core
import engine.store.record_tables
from engine.db import metadata

_ = (
    engine.admin.tables,
    engine.alerts.tables,
    engine.journal.message_tables,
    engine.journal.search,
    engine.journal.transformed,
    engine.security.senders,
    engine.store.access_log,
    engine.store.documents,
    engine.store.identity_cell,
    engine.store.record_tables,
)
#: The advisory lock migrations hold on PostgreSQL ("AIGUILLG" in ASCII).
_LOCK = 0x4149475549_4C4C47


def run_migrations_online() -> None:
    db: Engine = context.config.attributes["engine"]
    with db.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        driver: Any = connection.connection.driver_connection
        if sqlite:
            # A batch migration rebuilds a table (copy, drop, rename): the foreign keys that
            # point at it must not be enforced meanwhile. The pragma works outside a
            # transaction only, hence on the driver's connection before SQLAlchemy begins one.
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # Intake and worker processes start together: one migrates, the others
                    # wait here, then find the schema current.
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
                context.run_migrations()
            connection.commit()
        finally:
            if sqlite:
                driver.execute("PRAGMA foreign_keys=ON")


run_migrations_online()
