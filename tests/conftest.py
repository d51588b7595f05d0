"""Shared fixtures: record store databases on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, Table, text
from sqlalchemy.exc import OperationalError

from engine.db import make_engine, metadata
from tests import pg_private
from tests.pg_private import PrivatePostgres

pytest_plugins = ["tests.broker"]

POSTGRES_URL = os.environ.get(
    "AIGUILLAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def store_tables() -> list[Table]:
    """The record store's tables (with the record's access tables: filing checks that a
    record is open) and the journal's (the identity rules hold and release journaled
    messages), so other tables in ``metadata`` are left alone."""
    import engine.store.record_tables  # noqa: F401  (register the tables on metadata)

    prefixes = ("store_", "journal_", "record_")
    return [t for t in metadata.sorted_tables if t.name.startswith(prefixes)]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine whose database holds empty ``store_`` and ``journal_`` tables.

    PostgreSQL gets a schema of its own per test (its ``search_path``), dropped after it.
    The PostgreSQL case is skipped only when the server is unreachable and ``CI`` is unset.
    """
    import engine.journal.message_tables
    import engine.store.record_core  # noqa: F401  (register the tables on metadata)

    if request.param == "sqlite":
        db = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        with db.begin() as conn:
            metadata.create_all(conn, tables=store_tables())
        yield db
        db.dispose()
        return
    db = make_engine(request.getfixturevalue("postgres_url"))
    try:
        with db.begin() as conn:
            metadata.create_all(conn, tables=store_tables())
        yield db
    finally:
        db.dispose()


def _postgres_or_skip() -> Engine:
    base = make_engine(POSTGRES_URL)
    try:
        with base.connect():
            pass
    except OperationalError as exc:
        base.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} unreachable and CI is set: {exc.orig}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} unreachable (and CI unset)")
    return base


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    base = _postgres_or_skip()
    schema = f"engine_test_{uuid.uuid4().hex[:12]}"
    with base.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with base.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        base.dispose()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of the test's own (tests/pg_private.py), started, on a free port: the test
    may stop, restart or freeze it. Skipped only when PostgreSQL's binaries (or the postgres
    user, as root) are missing and ``CI`` is unset."""
    bin_dir = pg_private.binaries()
    try:
        if bin_dir is None:
            raise FileNotFoundError("no /usr/lib/postgresql/*/bin/initdb")
        server = PrivatePostgres(bin_dir)
    except (FileNotFoundError, KeyError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"cannot make a private PostgreSQL and CI is set: {exc}")
        pytest.skip(f"cannot make a private PostgreSQL (and CI unset): {exc}")
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session", autouse=True)
def _private_postgres_template() -> Iterator[None]:
    """The private servers' initdb template is removed at the end of the session."""
    yield
    pg_private.remove_template()
