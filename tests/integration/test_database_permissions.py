"""The SQLite database holds patient data: its file, ``-wal`` and ``-shm`` are 0600 and the
directories made for it 0700, whatever the umask lets others read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import text

from engine.db import make_engine
from engine.migrate import upgrade
from tests.integration.inprocess import ADT_CHANNEL, ENGINE_HEAD, InProcessEngine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(db_file: Path) -> dict[str, int]:
    """The modes of the database file and of its ``-wal`` and ``-shm`` (which must exist)."""
    return {
        suffix: mode(db_file.with_name(db_file.name + suffix)) for suffix in ("", "-wal", "-shm")
    }


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask, which lets everyone read what a process creates."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_database_and_its_directories_are_private_to_the_engine_user(
    tmp_path: Path,
) -> None:
    os.chmod(tmp_path, 0o755)  # an existing directory: left as it is
    db_file = tmp_path / "var" / "data" / "engine.db"
    db = make_engine(f"sqlite:///{db_file}")
    try:
        upgrade(db)
        with db.connect() as conn:  # an open connection keeps -wal and -shm in place
            conn.execute(text("SELECT count(*) FROM journal_messages"))
            assert modes(db_file) == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    finally:
        db.dispose()
    assert (mode(tmp_path / "var"), mode(tmp_path / "var" / "data")) == (0o700, 0o700)
    assert mode(tmp_path) == 0o755


def test_an_engine_started_on_a_fresh_path_keeps_its_database_private(tmp_path: Path) -> None:
    db_file = tmp_path / "fresh" / "engine.db"
    engine = InProcessEngine(ENGINE_HEAD + ADT_CHANNEL, url=f"sqlite:///{db_file}")
    try:
        assert modes(db_file) == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
        assert mode(db_file.parent) == 0o700
    finally:
        engine.stop()


def test_a_world_readable_database_of_ours_is_tightened_and_said_so(tmp_path: Path) -> None:
    db_file = tmp_path / "engine.db"
    first = make_engine(f"sqlite:///{db_file}")
    upgrade(first)
    first.dispose()
    os.chmod(db_file, 0o644)  # as versions before this one created it
    with structlog.testing.capture_logs() as logs:
        db = make_engine(f"sqlite:///{db_file}")
    try:
        with db.connect() as conn:
            conn.execute(text("SELECT count(*) FROM journal_messages"))
            assert modes(db_file) == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    finally:
        db.dispose()
    tightened = [e for e in logs if e["event"] == "database_file_tightened"]
    assert [(e["file"], e["was"], e["now"]) for e in tightened] == [
        (str(db_file), "0o644", "0o600")
    ]
