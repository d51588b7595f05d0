"""Contract 1 (durable before acknowledged) with commits that do not wait for the disk.

On SQLite with ``durability: full`` the pipeline's batches commit with ``synchronous=NORMAL``:
no sender was told their end states, and the next synced commit (intake's) makes them durable.
Intake's commits, and a batch whose end state a sender waits for (a channel answering after
processing, MSH-16 asking for an application ACK), stay synced; a connection never goes back
to the pool relaxed. Read from the statements SQLite runs (its trace callback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from engine.channels.config import ChannelConfig
from engine.db import make_engine
from engine.journal.journal import Journal
from engine.journal.message_tables import messages
from engine.migrate import upgrade
from engine.pipeline.worker import Worker
from engine.runtime.wiring import build_pipeline
from tests.integration.test_journal import a28, oru
from tests.integration.test_worker_batches import receive

NORMAL, FULL = "PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"


class Traced:
    """A SQLite database whose connections report every statement they run."""

    def __init__(self, tmp: Path, durability: str) -> None:
        self.statements: list[str] = []
        self.db = make_engine(f"sqlite:///{tmp}/journal.db", durability=durability)
        event.listen(self.db, "connect", self._trace)
        upgrade(self.db)
        self.statements.clear()

    def _trace(self, dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(self.statements.append)

    def commits(self) -> list[str]:
        """The ``synchronous`` setting each COMMIT ran under, in order."""
        mode, out = FULL, []
        for statement in self.statements:
            if statement in (NORMAL, FULL):
                mode = statement
            elif statement == "COMMIT":
                out.append(mode.rsplit("=", 1)[1])
        return out

    def pooled_synchronous(self) -> int:
        with self.db.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            return int(dbapi.execute("PRAGMA synchronous").fetchone()[0])


@pytest.fixture
def full(tmp_path: Path) -> Iterator[Traced]:
    traced = Traced(tmp_path, "full")
    yield traced
    traced.db.dispose()


def drain(db: Engine, channel: ChannelConfig) -> None:
    worker = Worker(db, Journal(db), {channel.name: build_pipeline(channel)})
    while worker.run_once():
        pass


def states(db: Engine) -> list[str]:
    with db.connect() as conn:
        return list(conn.scalars(select(messages.c.state).order_by(messages.c.id)))


def answering_after_processing(channel: ChannelConfig) -> ChannelConfig:
    source = channel.source.model_copy(update={"answer_after": "processing"})
    return channel.model_copy(update={"source": source})


def with_msh16(message: bytes, value: str) -> bytes:
    header, rest = message.split(b"\r", 1)
    return header + b"||||" + value.encode() + b"\r" + rest  # MSH-13..15 empty, MSH-16


def test_intake_commits_are_synced(full: Traced, hospital: ChannelConfig) -> None:
    receive(full.db, hospital, a28("A28-1"), oru("ORU-1"))
    assert full.commits() == ["FULL"]
    assert NORMAL not in full.statements


def test_pipeline_batches_commit_unsynced_and_the_pool_stays_synced(
    full: Traced, hospital: ChannelConfig
) -> None:
    receive(full.db, hospital, a28("A28-1"), oru("ORU-1"), oru("ORU-2"))
    full.statements.clear()
    drain(full.db, hospital)
    assert states(full.db) == ["delivered"] * 3
    assert full.commits() and set(full.commits()) == {"NORMAL"}
    assert full.statements.count(NORMAL) == full.statements.count(FULL)  # each one restored
    assert full.pooled_synchronous() == 2  # FULL
    full.statements.clear()
    receive(full.db, hospital, oru("ORU-3"))  # intake after the pipeline: synced again
    assert full.commits() == ["FULL"]


def test_a_batch_holding_an_application_ack_request_is_synced(
    full: Traced, hospital: ChannelConfig
) -> None:
    receive(full.db, hospital, a28("A28-1"))
    drain(full.db, hospital)
    receive(full.db, hospital, oru("ORU-1"), with_msh16(oru("ORU-2"), "AL"), oru("ORU-3"))
    full.statements.clear()
    drain(full.db, hospital)
    assert states(full.db) == ["delivered"] * 4
    assert full.commits()[0] == "FULL"  # the batch holding ORU-2, claimed again synced
    assert full.pooled_synchronous() == 2


def test_a_channel_answering_after_processing_is_always_synced(
    full: Traced, hospital: ChannelConfig
) -> None:
    channel = answering_after_processing(hospital)
    receive(full.db, channel, a28("A28-1"), oru("ORU-1"))
    full.statements.clear()
    drain(full.db, channel)
    assert states(full.db) == ["delivered"] * 2
    assert set(full.commits()) == {"FULL"}
    assert NORMAL not in full.statements


def test_normal_durability_changes_nothing(tmp_path: Path, hospital: ChannelConfig) -> None:
    traced = Traced(tmp_path, "normal")
    receive(traced.db, hospital, a28("A28-1"), oru("ORU-1"))
    drain(traced.db, hospital)
    assert states(traced.db) == ["delivered"] * 2
    assert not {NORMAL, FULL} & set(traced.statements)
    traced.db.dispose()


def test_a_failing_batch_leaves_no_relaxed_connection(
    full: Traced, hospital: ChannelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    receive(full.db, hospital, a28("A28-1"))
    worker = Worker(full.db, Journal(full.db), {hospital.name: build_pipeline(hospital)})

    def broken(*_args: object) -> None:
        raise RuntimeError("the batch broke")

    monkeypatch.setattr(worker, "_transaction", broken)
    with pytest.raises(RuntimeError):
        worker.run_once()
    assert full.statements.count(NORMAL) == 1
    assert full.pooled_synchronous() == 2
    assert states(full.db) == ["received"]
