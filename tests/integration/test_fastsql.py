"""Statements run on the driver's cursor store what SQLAlchemy would: each row's values, with a
value shared by several rows (one timestamp for a group commit) converted once and still
right, and ids returned in the rows' order (psycopg: one pipelined ``executemany``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from engine.db import make_engine
from engine.fastsql import insert_into
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
    with store_db.connect() as conn:
        ident = Journal(store_db).append(conn, [NewMessage(channel="c", raw=b"MSH|^~\\&|x")])[0].id
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
