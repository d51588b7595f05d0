"""The worker's batches: one transaction, no savepoint on the happy path, the batch's inserts
gathered; a failing message makes the batch run again one message at a time, and costs only
itself. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import Engine, event, func, select

from engine import fastsql
from engine.channels.config import ChannelConfig
from engine.errors import TransformError
from engine.intake.rules import MessageRules
from engine.journal.journal import Journal
from engine.journal.message_tables import State, events, messages
from engine.pipeline.delivery import Delivery, Destination, RecordDestination
from engine.pipeline.pipeline import Pipeline
from engine.pipeline.worker import Worker
from engine.runtime.wiring import build_pipeline
from engine.store.record_core import observations
from tests.integration.test_journal import a28, oru

POISON = "ORU-POISON"


@pytest.fixture
def db(migrated_db: Engine) -> Engine:
    return migrated_db


class Poisoned:
    """The record store, but a message whose MSH-10 is ``POISON`` fails after its writes (a
    dead letter: not transient)."""

    transactional: bool = True

    def __init__(self, inner: Destination) -> None:
        self.name = inner.name
        self.inner = inner
        assert isinstance(inner, RecordDestination)
        self.rules = inner.rules  # a record store: the pipeline maps and identifies for it

    def write(self, delivery: Delivery) -> None:
        self.inner.write(delivery)
        if POISON.encode() in delivery.raw:
            raise TransformError("poisoned message")

    def close(self) -> None:
        self.inner.close()


def receive(db: Engine, channel: ChannelConfig, *payloads: bytes) -> list[int]:
    intake = MessageRules(channel.name, channel.accept, channel.source.default_charset)
    with db.connect() as conn:
        appended = Journal(db).append(conn, [intake.prepare(p, "test").row for p in payloads])
    return [a.id for a in appended]


def register(db: Engine, channel: ChannelConfig, patients: list[str]) -> None:
    receive(db, channel, *(a28(f"A28-{p}", p) for p in patients))
    worker = Worker(db, Journal(db), {channel.name: build_pipeline(channel)})
    while worker.run_once():
        pass


def states(db: Engine, ids: list[int]) -> list[str]:
    m = messages.c
    with db.connect() as conn:
        found = {r[0]: r[1] for r in conn.execute(select(m.id, m.state).where(m.id.in_(ids)))}
    return [found[i] for i in ids]


def rows_per_message(db: Engine) -> dict[int, int]:
    o = observations.c
    with db.connect() as conn:
        query = select(o.message_id, func.count()).group_by(o.message_id)
        return {int(r[0]): int(r[1]) for r in conn.execute(query)}


def test_a_poisoned_message_dead_letters_alone_and_the_others_are_filed_once(
    db: Engine, hospital: ChannelConfig
) -> None:
    register(db, hospital, ["000001", "000002", "000003"])
    store = build_pipeline(hospital).destinations
    [name] = store
    pipeline = Pipeline(hospital, {name: Poisoned(store[name])})
    worker = Worker(db, Journal(db), {hospital.name: pipeline})
    payloads = [
        oru("ORU-1", "000001"),
        oru("ORU-2", "000002"),
        oru("ORU-3", "000003"),
        oru(POISON, "000001"),
        oru("ORU-5", "000002"),
        oru("ORU-6", "000003"),
    ]
    ids = receive(db, hospital, *payloads)
    assert worker.run_once() == len(ids)  # one claimed batch
    assert worker.redone == 1
    expected = [State.DELIVERED] * 3 + [State.DEAD_LETTERED] + [State.DELIVERED] * 2
    assert states(db, ids) == expected
    poisoned = ids[3]
    # Each delivered message's two OBX once; nothing of the poisoned one (rolled back).
    assert rows_per_message(db) == {i: 2 for i in ids if i != poisoned}
    with db.connect() as conn:
        history = conn.execute(select(events.c.message_id, events.c.state)).all()
    assert [tuple(r) for r in history] == [(poisoned, State.DEAD_LETTERED)]
    assert worker.run_once() == 0  # nothing left, nothing applied twice


class Statements:
    """Every statement sent to the database: SQLAlchemy's (cursor events) and the fast
    path's (its DBAPI cursors wrapped); ``executemany`` and ``copy`` calls are one each."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __len__(self) -> int:
        return len(self.sql)

    def starting(self, word: str) -> list[str]:
        return [s for s in self.sql if s.lstrip().upper().startswith(word)]


class _Cursor:
    def __init__(self, cursor: Any, seen: Statements) -> None:
        self._cursor = cursor
        self._seen = seen

    def execute(self, sql: str, *args: Any) -> Any:
        self._seen.sql.append(sql)
        return self._cursor.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._seen.sql.append(sql)
        return self._cursor.executemany(sql, *args)

    def copy(self, sql: str, *args: Any) -> Any:
        self._seen.sql.append(sql)
        return self._cursor.copy(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@contextmanager
def counted(db: Engine) -> Iterator[Statements]:
    seen = Statements()
    original = fastsql._cursor

    def on_execute(_c: Any, _cur: Any, sql: str, *_rest: Any) -> None:
        seen.sql.append(sql)

    event.listen(db, "before_cursor_execute", on_execute)
    try:
        with mock.patch.object(fastsql, "_cursor", lambda conn: _Cursor(original(conn), seen)):
            yield seen
    finally:
        event.remove(db, "before_cursor_execute", on_execute)


def observation_write(sql: str) -> bool:
    return sql.startswith(("INSERT INTO store_observations", "COPY store_observations"))


def one_batch(
    db: Engine, channel: ChannelConfig, payloads: list[bytes], batched: bool
) -> Statements:
    worker = Worker(db, Journal(db), {channel.name: build_pipeline(channel)}, batched=batched)
    ids = receive(db, channel, *payloads)
    with counted(db) as seen:
        assert worker.run_once() == len(ids)
    assert states(db, ids) == [State.DELIVERED] * len(ids)
    return seen


def test_the_happy_path_sends_no_savepoint_and_one_insert_of_observations(
    db: Engine, hospital: ChannelConfig
) -> None:
    patients = [f"00000{n}" for n in range(1, 5)]
    register(db, hospital, patients)
    batch = [oru(f"ORU-A{n}", patients[n % 4]) for n in range(12)]
    seen = one_batch(db, hospital, batch, batched=True)
    assert seen.starting("SAVEPOINT") == []
    # One statement for the batch's rows: a COPY on PostgreSQL, an executemany on SQLite.
    assert len([s for s in seen.sql if observation_write(s)]) == 1
    # The counter sees savepoints: the per-message path sends one per message.
    again = [oru(f"ORU-B{n}", patients[n % 4]) for n in range(12)]
    reference = one_batch(db, hospital, again, batched=False)
    assert len(reference.starting("SAVEPOINT")) == len(again)
    assert len([s for s in reference.sql if observation_write(s)]) == len(again)


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_round_trips_per_batch_do_not_grow_with_its_inserts_on_postgresql(
    db: Engine, hospital: ChannelConfig
) -> None:
    """On PostgreSQL each statement is a network round trip (an executemany is one: psycopg 3
    sends it in pipeline mode). Writes per batch stay the same whatever its size, and so do
    reads: the batch's patients are looked up in one statement before its messages run
    (``engine.pipeline.identify.prefetch``), whether they are 4 or 32."""
    patients = [f"0000{n:02d}" for n in range(1, 33)]
    register(db, hospital, patients)
    small = one_batch(db, hospital, [oru(f"S{n}", patients[n]) for n in range(4)], True)
    large = one_batch(db, hospital, [oru(f"L{n}", patients[n]) for n in range(32)], True)
    writes = ("INSERT", "COPY", "UPDATE", "DELETE")
    assert [len(small.starting(w)) for w in writes] == [len(large.starting(w)) for w in writes]
    assert len(large.starting("SELECT")) == len(small.starting("SELECT"))  # one lookup
    one = one_batch(db, hospital, [oru(f"O{n}", patients[0]) for n in range(4)], True)
    many = one_batch(db, hospital, [oru(f"M{n}", patients[0]) for n in range(32)], True)
    assert len(many) == len(one)
    assert len(many) <= 10
