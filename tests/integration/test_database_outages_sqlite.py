"""SQLite outages: a journal on a full disk or a read-only file system, or locked by another
process. The sender hears AE at once (or at the commit timeout), the outage is named and
logged once, and the engine recovers by itself."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from engine.db import make_engine
from engine.migrate import upgrade
from tests.integration.outage_harness import (
    MllpLine,
    OutageEngine,
    WaitingEngine,
    message,
    remount,
    small_tmpfs,
    wait_for,
)

COMMIT_TIMEOUT = 1.0


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    with small_tmpfs("8m") as path:
        yield path


def fill(directory: Path) -> Path:
    """A file that takes every free byte of ``directory``'s file system."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:  # the last few bytes
                out.write(b"\0")
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_journal_on_a_full_disk_answers_ae_at_once_and_recovers_when_space_is_freed(
    tmpfs: Path,
) -> None:
    eng = OutageEngine(f"sqlite:///{tmpfs / 'engine.db'}", commit_timeout=COMMIT_TIMEOUT)
    state = eng.engine.database_state
    line = MllpLine(eng.port)
    try:
        assert line.ask(message(1))[0] == "AA"
        eng.wait_idle()
        filler = fill(tmpfs)
        with structlog.testing.capture_logs() as logs:
            # The WAL reuses its pages for a while: large messages until one does not fit.
            for n in range(2, 200):
                code, took = line.ask(message(n, padding=100_000))
                if code != "AA":
                    break
            down = state.snapshot()
            filler.unlink()
            assert line.ask(message(n, padding=100_000))[0] == "AA"  # the sender's resend
            wait_for(lambda: state.up, what="the database back up")
        assert (code, took < COMMIT_TIMEOUT) == ("AE", True), (code, took)
        # The outage as logged: a snapshot taken after the AE may already show the database
        # up again (a read of the pipeline succeeds on a full disk and says so).
        outages = [e["reason"] for e in logs if e["event"] == "database_unavailable"]
        assert outages == ["disk_full"], (down.up, down.reason, outages)
        names = [e["event"] for e in logs]
        assert names.count("database_unavailable") == names.count("database_recovered") == 1
        eng.wait_idle()
        assert eng.journaled(f"OUT{n}") == 1
    finally:
        line.close()
        eng.stop()


def test_an_engine_on_a_read_only_database_waits_until_it_is_writable(tmpfs: Path) -> None:
    url = f"sqlite:///{tmpfs / 'engine.db'}"
    db = make_engine(url)
    upgrade(db)
    db.dispose()
    remount(tmpfs, "ro")
    with structlog.testing.capture_logs() as logs:
        eng = WaitingEngine(url, commit_timeout=COMMIT_TIMEOUT)
        try:
            wait_for(lambda: any(e["event"] == "database_waiting" for e in logs), what="waiting")
            assert not eng.started.done() and not eng.engine.database_state.up
            remount(tmpfs, "rw")
            eng.started.result(30)
            line = MllpLine(eng.port)
            assert line.ask(message(1))[0] == "AA"
            line.close()
        finally:
            remount(tmpfs, "rw")
            eng.stop()
    waiting = next(e for e in logs if e["event"] == "database_waiting")
    assert (waiting["database"], waiting["reason"]) == (str(tmpfs / "engine.db"), "read_only")


def test_a_journal_locked_by_another_process_is_an_outage_until_the_lock_goes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "engine.db"
    eng = OutageEngine(f"sqlite:///{path}", commit_timeout=COMMIT_TIMEOUT)
    state = eng.engine.database_state
    line = MllpLine(eng.port)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        assert line.ask(message(1))[0] == "AA"
        eng.wait_idle()
        with structlog.testing.capture_logs() as logs:
            other.execute("BEGIN EXCLUSIVE")
            code, took = line.ask(message(2))
            down = state.snapshot()
            other.execute("ROLLBACK")
            wait_for(lambda: state.up, what="the database back up")
        assert (code, took < COMMIT_TIMEOUT + 0.5) == ("AE", True), took
        assert (down.up, down.reason) == (False, "timeout")
        [recovered] = [e for e in logs if e["event"] == "database_recovered"]
        assert recovered["reason"] == "timeout" and recovered["messages_refused"] == 1
        assert line.ask(message(2))[0] == "AA"
    finally:
        other.close()
        line.close()
        eng.stop()
