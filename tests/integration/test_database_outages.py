"""The engine against a PostgreSQL of the test's own that the test restarts, stops and freezes:
no false AE after a restart, AE within the commit timeout while frozen, AE at once while down,
one log line per outage and one at its end, the state a readiness probe reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import structlog
from sqlalchemy import create_engine, text

from engine.database_state import DatabaseState
from tests.integration.outage_harness import MllpLine, OutageEngine, message, wait_for
from tests.pg_private import PrivatePostgres

COMMIT_TIMEOUT = 2.0


@pytest.fixture
def engine(private_postgres: PrivatePostgres) -> Iterator[OutageEngine]:
    eng = OutageEngine(private_postgres.url, commit_timeout=COMMIT_TIMEOUT)
    yield eng
    private_postgres.thaw()
    eng.stop()


@pytest.fixture
def line(engine: OutageEngine) -> Iterator[MllpLine]:
    """A connection whose first message is journaled: the writer holds a connection since."""
    mllp = MllpLine(engine.port)
    assert mllp.ask(message(1))[0] == "AA"
    engine.wait_idle()
    yield mllp
    mllp.close()


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def terminate_backends(server: PrivatePostgres) -> None:
    """What a proxy or an operator does: every other session of the database cut."""
    db = create_engine(server.url)
    with db.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database()"
            )
        )
    db.dispose()


@pytest.mark.parametrize("cut", ["restart_fast", "restart_immediate", "terminate_backends"])
def test_the_first_messages_after_a_database_restart_are_accepted(
    engine: OutageEngine, line: MllpLine, private_postgres: PrivatePostgres, cut: str
) -> None:
    if cut == "terminate_backends":
        terminate_backends(private_postgres)
    else:
        private_postgres.restart(cut.removeprefix("restart_"))
    with structlog.testing.capture_logs() as logs:
        codes = [line.ask(message(n))[0] for n in (2, 3)]
    assert codes == ["AA", "AA"], logs
    # The writer's connection died with the server's session: its commit was tried again.
    assert [e["reason"] for e in events(logs, "journal_commit_retried")] in (
        ["shut_down"],
        ["disconnected"],
    )
    engine.wait_idle()
    assert [engine.journaled(f"OUT{n}") for n in (2, 3)] == [1, 1]


def test_senders_hear_ae_within_the_commit_timeout_while_postgresql_is_frozen(
    engine: OutageEngine, line: MllpLine, private_postgres: PrivatePostgres
) -> None:
    state = engine.engine.database_state
    with structlog.testing.capture_logs() as logs:
        private_postgres.freeze()
        try:
            answers = [line.ask(message(n)) for n in (2, 3)]
            down = state.snapshot()
        finally:
            private_postgres.thaw()
        wait_for(lambda: state.up, what="the database back up")
    assert [code for code, _ in answers] == ["AE", "AE"]
    assert max(took for _, took in answers) < COMMIT_TIMEOUT + 1.0, answers
    assert (down.up, down.reason, down.database) == (False, "timeout", private_postgres.where)
    [recovered] = events(logs, "database_recovered")
    assert recovered["reason"] == "timeout" and recovered["seconds"] >= COMMIT_TIMEOUT
    # The senders resend: each message is journaled once (the frozen commit may have landed).
    assert [line.ask(message(n))[0] for n in (2, 3)] == ["AA", "AA"]
    engine.wait_idle()
    assert [engine.journaled(f"OUT{n}") for n in (2, 3)] == [1, 1]


def test_while_postgresql_is_down_senders_hear_ae_at_once_and_the_outage_is_logged_once(
    engine: OutageEngine, line: MllpLine, private_postgres: PrivatePostgres
) -> None:
    state = engine.engine.database_state
    with structlog.testing.capture_logs() as logs:
        private_postgres.stop("immediate")
        answers = [line.ask(message(n)) for n in range(2, 12)]
        down = state.snapshot()
        # The idle pipeline keeps trying (once a second): three more failures, no more lines.
        wait_for(lambda: state.snapshot().failures >= len(answers) + 3, what="pipeline tries")
        private_postgres.start()
        wait_for(lambda: state.up, what="the database back up")
    assert [code for code, _ in answers] == ["AE"] * 10
    # Not one answer a second behind the pipeline's rest (about 9 s for ten): each at once.
    assert sum(took for _, took in answers) < 3.0, answers
    # Refused; or, when the idle pipeline was mid-query as the server died, the lost session.
    named = {"refused", "disconnected", "shut_down"}
    assert (down.up, down.reason in named, down.database) == (False, True, private_postgres.where)
    [unavailable] = events(logs, "database_unavailable")
    assert unavailable["reason"] == down.reason and unavailable["database"] == down.database
    assert events(logs, "pipeline_database_error") == events(logs, "journal_commit_failed") == []
    [recovered] = events(logs, "database_recovered")
    assert recovered["messages_refused"] == 10 and recovered["failures"] >= 13
    assert recovered["seconds"] > 0
    assert [line.ask(message(n))[0] for n in (2, 11)] == ["AA", "AA"]


def test_database_errors_are_named_by_their_reason(private_postgres: PrivatePostgres) -> None:
    state = DatabaseState(private_postgres.url)

    def reason_of(url: str) -> str:
        db = create_engine(url, connect_args={"connect_timeout": 2})
        try:
            with db.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return state.reason(exc)
        finally:
            db.dispose()
        return "up"

    assert reason_of(private_postgres.url.replace("/postgres", "/nowhere")) == "unknown_database"
    private_postgres.freeze()
    try:
        assert reason_of(private_postgres.url) == "timeout"
    finally:
        private_postgres.thaw()
    private_postgres.stop("fast")
    assert reason_of(private_postgres.url) == "refused"
    # A server starting up (crash recovery) and a session ended by a shutdown, as libpq says.
    starting = psycopg.OperationalError("FATAL:  the database system is starting up")
    assert state.reason(starting) == "starting_up"
    ended = psycopg.OperationalError("terminating connection due to administrator command")
    assert state.reason(ended) == "shut_down"
