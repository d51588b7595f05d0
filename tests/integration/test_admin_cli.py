"""``aiguillage users``, ``tokens`` and ``audit``; the CLI's operator actions and payload or
trait views are audited under the host login."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner, Result

from engine.admin.tables import audit, tokens, users
from engine.cli.main import app
from engine.db import URL_ENV, make_engine
from engine.errors import IdentityConflict
from engine.journal.message_tables import State
from engine.migrate import upgrade
from engine.pipeline.identify import review
from tests.integration import admin_seed as seed

ME = f"os:{getpass.getuser()}"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv(URL_ENV, url)
    monkeypatch.chdir(tmp_path)
    engine = make_engine(url, durability="normal")
    upgrade(engine)
    yield engine
    engine.dispose()


def cli(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin)


def trail(db: Engine) -> list[tuple[str, str, list[object], str]]:
    with db.connect() as conn:
        rows = conn.execute(select(audit.c.actor, audit.c.action, audit.c.ids, audit.c.reason))
        return [(a, b, json.loads(c), d) for a, b, c, d in rows]


def test_users_are_added_listed_changed_and_disabled_with_an_audit_row_each(db: Engine) -> None:
    added = cli(
        "users", "add", "alice", "--role", "operator", "--password-stdin", stdin="long pass 1\n"
    )
    assert added.exit_code == 0, added.output
    assert (
        cli(
            "users", "add", "bob", "--role", "viewer", "--password-stdin", stdin="short\n"
        ).exit_code
        == 1
    )
    again = cli(
        "users", "add", "alice", "--role", "admin", "--password-stdin", stdin="long pass 2\n"
    )
    assert again.exit_code == 1 and "already exists" in again.output
    assert cli("users", "passwd", "alice", "--password-stdin", stdin="long pass 3\n").exit_code == 0
    assert cli("users", "disable", "alice", "--reason", "left").exit_code == 0
    assert cli("users", "disable", "nobody").exit_code == 1
    [listed] = json.loads(cli("users", "list", "--json").output)
    assert (listed["name"], listed["role"]) == ("alice", "operator")
    assert listed["disabled_at"] is not None
    with db.connect() as conn:
        stored = conn.execute(select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "long pass" not in stored
    assert trail(db) == [
        (ME, "user_add", ["alice"], ""),
        (ME, "user_passwd", ["alice"], ""),
        (ME, "user_disable", ["alice"], "left"),
    ]


def test_a_token_is_printed_once_stored_as_a_hash_listed_without_it_and_revoked(
    db: Engine,
) -> None:
    made = cli("tokens", "add", "grafana", "--role", "viewer")
    assert made.exit_code == 0
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("aig_")
    with db.connect() as conn:
        row = conn.execute(select(tokens)).one()._mapping
    assert token not in json.dumps(dict(row), default=str)
    listed = cli("tokens", "list", "--json").output
    assert "grafana" in listed and token not in listed
    assert cli("tokens", "revoke", "grafana").exit_code == 0
    assert cli("tokens", "revoke", "grafana").exit_code == 1
    assert [t[1] for t in trail(db)] == ["token_add", "token_revoke"]


def test_dlq_show_replay_and_discard_are_audited_under_the_host_login(db: Engine) -> None:
    a = seed.message(db, "D1", state=State.DEAD_LETTERED, error_code="x")
    b = seed.message(db, "D2", state=State.DEAD_LETTERED, error_code="x")
    assert cli("dlq", "show", str(a)).exit_code == 0
    assert cli("dlq", "replay", str(a), "--reason", "fixed").exit_code == 0
    assert cli("dlq", "discard", str(b), "--reason", "test message").exit_code == 0
    assert trail(db) == [
        (ME, "view_payload", [a], ""),
        (ME, "replay", [a], "fixed"),
        (ME, "discard", [b], "test message"),
    ]
    shown = json.loads(cli("audit", "--json").output)
    assert [e["action"] for e in shown] == ["discard", "replay", "view_payload"]


def test_identity_show_and_resolve_are_audited_under_the_host_login(db: Engine) -> None:
    mid = seed.message(db, "R1", state=State.REVIEW)
    with db.begin() as conn:
        review.open_review(conn, mid, "lab", IdentityConflict("differ", []), datetime.now(UTC))
    with db.connect() as conn:
        [r] = review.reviews(conn)
    assert cli("identity", "show", str(r["id"])).exit_code == 0
    done = cli("identity", "resolve", str(r["id"]), "--reject", "--reason", "wrong patient")
    assert done.exit_code == 0, done.output
    assert trail(db) == [
        (ME, "view_traits", [r["id"]], ""),
        (ME, "resolve", [r["id"]], "wrong patient"),
    ]
