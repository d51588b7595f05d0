"""``aiguillage run`` and the CLI against a PostgreSQL of the test's own, stopped or frozen by
the test: the engine waits for its database at start (listeners closed, why logged), SIGTERM
exits 0 with ``engine_stopped`` last whatever the database's state, and CLI commands give up
in one line with exit status 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.engine_process import AIGUILLAGE, EngineProcess, free_port, write_channels
from tests.integration.outage_harness import MllpLine, message, wait_for
from tests.pg_private import PrivatePostgres

PASSWORD = "s3cret-not-logged"


def engine_on(server: PrivatePostgres, tmp_path: Path) -> EngineProcess:
    port = free_port()
    url = server.url.replace("postgres@", f"postgres:{PASSWORD}@")
    channels = write_channels(tmp_path, port, url, commit_timeout_seconds=2)
    return EngineProcess(channels, port, url, tmp_path / "log")


def log_events(engine: EngineProcess) -> list[dict[str, Any]]:
    lines = engine.log.read_text().splitlines() if engine.log.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def logged(engine: EngineProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in log_events(engine) if e["event"] == name]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def assert_stopped_cleanly(engine: EngineProcess, timeout: float = 30) -> None:
    assert engine.terminate(timeout) == 0, engine.log.read_text()[-3000:]
    assert log_events(engine)[-1]["event"] == "engine_stopped"
    assert "Traceback" not in engine.log.read_text()


def test_the_engine_started_without_its_database_waits_for_it_then_serves(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    private_postgres.stop("fast")
    engine = engine_on(private_postgres, tmp_path)
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(engine.start, 60)
        wait_for(lambda: len(logged(engine, "database_waiting")) >= 2, what="database_waiting")
        assert engine.alive() and not listening(engine.port)
        waiting = logged(engine, "database_waiting")[0]
        assert (waiting["database"], waiting["reason"]) == (private_postgres.where, "refused")
        private_postgres.start()
        started.result(60)
    with MllpLine(engine.port) as line:
        assert line.ask(message(1))[0] == "AA"
    assert logged(engine, "database_ready")
    assert PASSWORD not in engine.log.read_text()
    assert_stopped_cleanly(engine)


def test_sigterm_while_the_engine_waits_for_its_database_exits_0(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    private_postgres.stop("immediate")
    engine = engine_on(private_postgres, tmp_path)
    engine.ready_line = "database_waiting"
    engine.start()
    assert_stopped_cleanly(engine)


@pytest.mark.parametrize("outage", ["stopped", pytest.param("frozen", marks=pytest.mark.slow)])
def test_sigterm_during_a_database_outage_exits_0_with_engine_stopped_last(
    private_postgres: PrivatePostgres, tmp_path: Path, outage: str
) -> None:
    engine = engine_on(private_postgres, tmp_path)
    engine.start()
    with MllpLine(engine.port) as line:
        assert line.ask(message(1))[0] == "AA"
        engine.wait_idle()
        if outage == "stopped":
            private_postgres.stop("immediate")
        else:
            private_postgres.freeze()
        assert line.ask(message(2))[0] == "AE"  # at once, or at the commit deadline (frozen)
    started = time.monotonic()
    # The writer's drain (10 s) is the only wait a frozen database can cause.
    assert_stopped_cleanly(engine, timeout=30)
    assert time.monotonic() - started < 25


def cli(
    server_url: str, tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "AIGUILLAGE_DATABASE_URL": server_url}
    started = time.monotonic()
    done = subprocess.run(
        [str(AIGUILLAGE), *args, "--config", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    return done, time.monotonic() - started


@pytest.mark.parametrize(("outage", "reason"), [("stopped", "refused"), ("frozen", "timeout")])
def test_cli_commands_say_in_one_line_which_database_is_unavailable_and_exit_2(
    private_postgres: PrivatePostgres, tmp_path: Path, outage: str, reason: str
) -> None:
    if outage == "stopped":
        private_postgres.stop("immediate")
    else:
        private_postgres.freeze()
    url = private_postgres.url.replace("postgres@", f"postgres:{PASSWORD}@")
    for command in (["stats"], ["dlq", "list"]):
        done, took = cli(url, tmp_path, *command)
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.strip().splitlines() == [
            f"database {private_postgres.where} unavailable: {reason} (OperationalError)"
        ]
        assert took < 20  # the connection's timeout (5 s) and the start, not a hang
    private_postgres.thaw()


@pytest.mark.slow
def test_thirty_seconds_of_frozen_postgresql_senders_hear_ae_in_time_and_the_cli_gives_up(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    engine = engine_on(private_postgres, tmp_path)
    engine.start()
    with MllpLine(engine.port) as line:
        assert line.ask(message(1))[0] == "AA"
        engine.wait_idle()
        private_postgres.freeze()
        frozen_at, answers, n = time.monotonic(), [], 2
        try:
            while time.monotonic() - frozen_at < 30:
                answers.append(line.ask(message(n)))
                n += 1
            done, took = cli(engine.db_url, tmp_path, "stats")
        finally:
            private_postgres.thaw()
        assert {code for code, _ in answers} == {"AE"}
        assert max(t for _, t in answers) < 2 + 1.0, answers  # commit_timeout_seconds: 2
        assert (done.returncode, took < 20) == (2, True), (done.stderr, took)
        # The senders resend once it is back: every message accepted, each journaled once.
        wait_for(lambda: logged(engine, "database_recovered"), what="database_recovered")
        assert logged(engine, "database_recovered")[0]["seconds"] >= 25
        assert {line.ask(message(k))[0] for k in range(2, n)} == {"AA"}
    engine.wait_idle()
    ids = engine.column("SELECT control_id FROM journal_messages WHERE control_id LIKE 'OUT%'")
    assert sorted(ids) == sorted(f"OUT{k}" for k in range(1, n))
    assert_stopped_cleanly(engine)
