"""A pipeline process runs the stages that need no database (parse, steps, route, transform)
ahead of each batch's transaction, without the write lock, so that intake commits on the other
core meanwhile. Contract 3 and contract 2: what the batch files and every end state are those
of the plain worker; a message that changed since it ran ahead runs every stage again."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, update

from engine.channels.config import ChannelConfig
from engine.db import make_engine
from engine.journal.claim import claim_pending
from engine.journal.journal import Journal
from engine.journal.message_tables import messages
from engine.migrate import upgrade
from engine.pipeline import worker as worker_module
from engine.pipeline.pipeline import Pipeline
from engine.pipeline.stage_parse import Parse
from engine.pipeline.worker import MIN_SLICE, Worker
from engine.runtime.wiring import build_pipeline
from engine.store.record_core import observations
from tests.integration.test_journal import a28, oru
from tests.integration.test_worker_batches import receive


def sqlite(path: Path) -> Engine:
    db = make_engine(f"sqlite:///{path}", durability="full")
    upgrade(db)
    return db


def registered(tmp_path: Path, hospital: ChannelConfig) -> Engine:
    """A database where the patient of the tests' results (000001) is known."""
    db = sqlite(tmp_path / "journal.db")
    receive(db, hospital, a28("A28-1", "000001"))
    drain(worker_of(db, hospital, ahead=False))
    return db


def worker_of(db: Engine, channel: ChannelConfig, ahead: bool) -> Worker:
    worker = Worker(db, Journal(db), {channel.name: build_pipeline(channel)})
    worker.prepares_ahead = ahead
    return worker


def mixed(db: Engine, channel: ChannelConfig) -> None:
    """A registered patient's results, an unknown patient's (held), an ADT, a message of a
    type the channel refuses at parse (a replayed intake dead letter would be), a broken one."""
    receive(db, channel, a28("A28-1", "000001"))
    receive(
        db,
        channel,
        oru("ORU-1", "000001"),
        oru("ORU-2", "000009"),  # unknown patient: held (identify needs the database)
        oru("ORU-3", "000001", glucose="abc"),
        a28("A28-2", "000002"),
        oru("ORU-4", "000002"),
        oru("ORU-5", "000001").replace(b"OBX|1|NM", b"OBX|1|ZZ"),
    )


def outcome(db: Engine) -> tuple[list[tuple[str, str | None, str | None]], int]:
    m = messages.c
    with db.connect() as conn:
        rows = conn.execute(select(m.state, m.error_stage, m.error_code).order_by(m.id)).all()
        filed = conn.execute(select(func.count()).select_from(observations)).scalar_one()
    return [tuple(r) for r in rows], int(filed)


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry each time the parse stage runs."""
    calls: list[int] = []
    original = Parse.run

    def counted(self: Parse, work: object) -> None:
        calls.append(1)
        original(self, work)  # type: ignore[arg-type]

    monkeypatch.setattr(Parse, "run", counted)
    return calls


def test_ahead_ends_every_message_as_the_plain_worker(
    tmp_path: Path, hospital: ChannelConfig
) -> None:
    plain, ahead = sqlite(tmp_path / "plain.db"), sqlite(tmp_path / "ahead.db")
    for db in (plain, ahead):
        mixed(db, hospital)
    drain(worker_of(plain, hospital, ahead=False))
    drain(worker_of(ahead, hospital, ahead=True))
    assert outcome(ahead) == outcome(plain)
    states = [s for s, *_ in outcome(ahead)[0]]
    assert {"delivered", "held"} <= set(states)


def test_stages_run_ahead_outside_the_write_lock_and_once(
    tmp_path: Path, hospital: ChannelConfig, parsed: list[int]
) -> None:
    db = registered(tmp_path, hospital)
    receive(db, hospital, oru("ORU-1", "000001"), oru("ORU-2", "000001"))
    worker = worker_of(db, hospital, ahead=True)
    parsed.clear()  # the registration's
    # Another connection holds SQLite's write lock: the pass ahead only reads.
    with db.connect() as holder:
        holder.execute(select(1))  # BEGIN IMMEDIATE: the write lock
        ran = threading.Thread(target=worker._prepare_ahead, daemon=True)
        ran.start()
        ran.join(10)
        assert not ran.is_alive(), "the pass ahead waited for the write lock"
        holder.rollback()
    assert sorted(w.pending.id for w in worker._ahead.values()) == [2, 3]
    assert all(w.operations for w in worker._ahead.values())  # transformed for the store
    assert len(parsed) == 2
    worker.prepares_ahead = False  # the transaction only: it goes on from what ran ahead
    assert worker.run_once() == 2
    assert len(parsed) == 2  # not parsed again
    assert [s for s, *_ in outcome(db)[0]] == ["delivered"] * 3


def test_a_message_changed_since_it_ran_ahead_runs_every_stage(
    tmp_path: Path, hospital: ChannelConfig
) -> None:
    db = registered(tmp_path, hospital)
    [ident] = receive(db, hospital, oru("ORU-1", "000001"))
    pipeline: Pipeline = build_pipeline(hospital)
    worker = Worker(db, Journal(db), {hospital.name: pipeline})
    worker.prepares_ahead = True
    worker._prepare_ahead()
    work = worker._ahead[ident]
    # Claimed with its store already written (a retry after a later destination failed):
    # what ran ahead mapped it for the store, which this claim must not get again.
    claimed = replace(work.pending, delivered_to={"store"})
    with db.connect() as conn:
        ended = pipeline.process(conn, claimed, work.now, work)
        conn.rollback()
    assert ended.state == "delivered"
    assert work.conn is None  # what ran ahead was not taken up
    with db.connect() as conn:
        same = pipeline.process(conn, replace(work.pending), work.now, work)
        conn.rollback()
    assert same.state == "delivered"
    assert work.conn is not None  # an unchanged claim goes on from it


def test_a_batch_cut_short_for_intake_keeps_the_rest_ahead(
    tmp_path: Path, hospital: ChannelConfig, parsed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = registered(tmp_path, hospital)
    receive(db, hospital, *(oru(f"ORU-{i}", "000001") for i in range(20)))
    worker = worker_of(db, hospital, ahead=True)
    parsed.clear()  # the registration's
    limits: list[int | None] = []
    claim = claim_pending

    def claimed(conn: Connection, now: datetime, limit: int | None, *rest: Any) -> Any:
        limits.append(limit)
        return claim(conn, now, limit, *rest)

    monkeypatch.setattr(worker_module, "claim_pending", claimed)
    monkeypatch.setattr(worker_module, "SLICE_SECONDS", 3600)  # cut by count, not by time
    assert worker.run_once(interrupt=lambda: True) == MIN_SLICE  # intake waits: cut short
    assert limits == [worker.batch_size, MIN_SLICE]  # ahead: a batch; the transaction: a slice
    assert len(parsed) == 20 and len(worker._ahead) == 20 - MIN_SLICE
    assert worker.run_once(interrupt=lambda: True) == MIN_SLICE
    assert worker.run_once(interrupt=lambda: True) == 20 - 2 * MIN_SLICE
    assert len(parsed) == 20  # each message parsed once, ahead
    assert [s for s, *_ in outcome(db)[0]] == ["delivered"] * 21


def test_work_ahead_for_messages_gone_meanwhile_is_dropped(
    tmp_path: Path, hospital: ChannelConfig
) -> None:
    db = registered(tmp_path, hospital)
    gone = receive(db, hospital, *(oru(f"ORU-{i}", "000001") for i in range(MIN_SLICE + 2)))
    worker = worker_of(db, hospital, ahead=True)
    worker._prepare_ahead()
    assert sorted(worker._ahead) == gone
    with db.begin() as conn:  # an operator discards them
        conn.execute(update(messages).where(messages.c.id.in_(gone)).values(state="discarded"))
    receive(db, hospital, oru("ORU-new", "000001"))
    # None of the work ahead was taken up since it was read: read again, the stale work goes.
    assert worker.run_once() == 1
    receive(db, hospital, oru("ORU-newer", "000001"))
    assert worker.run_once() == 1
    assert sorted(worker._ahead) == []
