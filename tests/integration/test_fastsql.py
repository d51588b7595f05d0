"""Statements run on the driver's cursor store what SQLAlchemy would: each row's values, with a
value shared by several rows (one timestamp for a group commit) converted once and still
right, and ids returned in the rows' order (psycopg: one pipelined ``executemany``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from engine.db import make_engine
from engine.fastsql import ROWS_PER_INSERT, FastStatement, insert_into
from engine.journal.journal import Journal
from engine.journal.message_tables import events, messages
from engine.journal.records import NewMessage
from engine.migrate import upgrade


@pytest.fixture
def store_db(store_url: str) -> Iterator[Engine]:
    engine = make_engine(store_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_rows_sharing_a_timestamp_and_rows_of_their_own_are_stored_alike(store_db: Engine) -> None:
    ident = _journaled(store_db)
    shared = datetime(2026, 12, 3, 10, 0, 1, 250000, tzinfo=UTC)
    times = [shared, shared, shared + timedelta(seconds=1), shared, None]
    rows = [
        {
            "message_id": ident,
            "at": at or shared,
            "state": "received",
            "attempt": n,
            "stage": None,
            "code": None,
            "reason": None,
            "actor": "a" if at is None else None,
        }
        for n, at in enumerate(times)
    ]
    with store_db.begin() as conn:
        insert_into(events).executemany(conn, rows)
    with store_db.connect() as conn:
        stored = conn.execute(select(events.c.at, events.c.attempt).order_by(events.c.id)).all()
    got = [(at.replace(tzinfo=at.tzinfo or UTC), attempt) for at, attempt in stored]
    assert got == [(r["at"], r["attempt"]) for r in rows]


def test_ids_come_back_in_the_order_of_the_rows(store_db: Engine) -> None:
    now = datetime.now(UTC)
    statement = insert_into(messages, returning=messages.c.id)
    rows = [
        {
            c.name: None
            for c in messages.columns
            if not c.primary_key and c.name not in ("attempts", "batch_position")
        }
        | {
            "channel": "c",
            "received_at": now,
            "updated_at": now,
            "peer": "",
            "state": "received",
            "attempts": 0,
            "batch_position": None,
            "ack_code": "AA",
            "charset": "",
            "size": n,
            "content_hash": f"h{n}",
            "raw": b"x" * n,
            "delivered_to": "",
            "control_id": f"K{n}",
        }
        for n in range(1, 40)
    ]
    with store_db.begin() as conn:
        ids = [r[0] for r in statement.executemany_returning(conn, rows)]
    assert ids == sorted(ids) and len(set(ids)) == len(rows)
    with store_db.connect() as conn:
        stored = dict(conn.execute(select(messages.c.id, messages.c.size)).all())
    assert [stored[i] for i in ids] == [r["size"] for r in rows]


def _event_rows(message_id: int, count: int) -> list[dict[str, object]]:
    at = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    return [
        {
            "message_id": message_id,
            "at": at + timedelta(seconds=n % 7),
            "state": "received",
            "attempt": n,
            "stage": None,
            "code": f"c{n}",
            "reason": None,
            "actor": None,
        }
        for n in range(count)
    ]


def _journaled(db: Engine) -> int:
    with db.connect() as conn:
        return Journal(db).append(conn, [NewMessage(channel="c", raw=b"MSH|^~\\&|x")])[0].id


def test_an_insert_stores_every_row_in_order_past_one_statement(store_db: Engine) -> None:
    ident = _journaled(store_db)
    rows = _event_rows(ident, 2 * ROWS_PER_INSERT + 5)
    with store_db.begin() as conn:
        insert_into(events).executemany(conn, rows)
    with store_db.connect() as conn:
        stored = conn.execute(
            select(events.c.attempt, events.c.code, events.c.at).order_by(events.c.id)
        ).all()
    assert [(a, c) for a, c, _ in stored] == [(r["attempt"], r["code"]) for r in rows]
    assert [at.replace(tzinfo=at.tzinfo or UTC) for _, _, at in stored] == [r["at"] for r in rows]


def test_on_sqlite_an_insert_sends_one_statement_per_chunk_not_per_row(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'j.db'}")
    upgrade(db)
    ident = _journaled(db)
    rows = _event_rows(ident, ROWS_PER_INSERT + 1)
    with db.begin() as conn:
        statements: list[str] = []
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.set_trace_callback(statements.append)
        insert_into(events).executemany(conn, rows)
        dbapi.set_trace_callback(None)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 2  # 64 rows, then 1: the driver's executemany traces 65
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == len(rows)
    db.dispose()


def test_a_refused_row_fails_its_insert_as_sqlalchemy_error_and_stores_none_of_it(
    store_db: Engine,
) -> None:
    ident = _journaled(store_db)
    rows = _event_rows(ident, 5)
    rows[3]["state"] = None  # NOT NULL
    with pytest.raises(IntegrityError), store_db.begin() as conn:
        insert_into(events).executemany(conn, rows)
    with store_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 0


def test_a_statement_other_than_an_insert_still_runs_once_per_row(store_db: Engine) -> None:
    """Only an INSERT's VALUES rows are joined: an UPDATE given many rows updates each."""
    ident = _journaled(store_db)
    with store_db.begin() as conn:
        insert_into(events).executemany(conn, _event_rows(ident, 3))
    with store_db.connect() as conn:
        ids = [r[0] for r in conn.execute(select(events.c.id).order_by(events.c.id))]
    recode = FastStatement(
        update(events).where(events.c.id == bindparam("id_")).values(code=bindparam("code_"))
    )
    with store_db.begin() as conn:
        recode.executemany(conn, [{"id_": i, "code_": f"new{i}"} for i in ids])
    with store_db.connect() as conn:
        codes = [r[0] for r in conn.execute(select(events.c.code).order_by(events.c.id))]
    assert codes == [f"new{i}" for i in ids]
