"""The distributed runner without sockets: intake's writer hands each commit to the work queue
(here the in-memory twin of RabbitMQ) and two distributed workers run the pipeline on one SQLite
journal, into the in-memory twin of the destinations. Contract 4 (ordered per patient) and
contracts 1-3 (nothing lost, applied once) hold through a failed batch given back to the queue,
a worker killed with items in hand, and a broker away (the sweep takes what it did not
carry)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError

from engine.adapters.memory import MemoryBox, box, drop_box
from engine.channels.config import ChannelsFile
from engine.channels.loader import parse_channels
from engine.distributed.broker import WorkSession
from engine.distributed.consumer import DistributedWorker
from engine.distributed.items import WorkItem
from engine.distributed.memory_broker import MemoryBroker, MemorySession
from engine.distributed.publisher import WorkPublisher
from engine.intake.sink import Result
from engine.journal.journal import Journal, utcnow
from engine.journal.message_tables import State, messages
from engine.journal.records import Appended, NewMessage
from engine.pipeline.worker import Ran, Worker
from engine.pipeline.writer import Writer
from engine.runtime.wiring import build_worker

BOX = "distributed-memory"
PATIENTS = 4
CHANNELS = """
engine:
  database_url: "sqlite:///unused.db"
  work: {{sweep_seconds: 0.1, stale_seconds: {stale}, batch: 8}}
channels:
  - name: lab
    source: {{type: mllp, port: 2575}}
    accept: ["ADT^*"]
    destinations: {{twin: {{type: memory, box: {box}}}}}
"""


def config(stale: float = 30.0) -> ChannelsFile:
    return parse_channels(CHANNELS.format(stale=stale, box=BOX))


def adt(n: int) -> NewMessage:
    patient = f"IPP{n % PATIENTS}"
    raw = (
        f"MSH|^~\\&|GAM|CHU|DPI|CHU|20240306111154||ADT^A28^ADT_A05|M{n}|P|2.5\r"
        f"PID|1||{patient}^^^CHU^PI||NOM^JEANNE^^^^^L||19800101|F"
    ).encode()
    return NewMessage(
        channel="lab",
        raw=raw,
        control_id=f"M{n}",
        message_type="ADT",
        trigger="A28",
        patient_key=f"{patient}^CHU",
        charset="utf-8",
    )


@pytest.fixture
def memory() -> Iterator[MemoryBox]:
    yield box(BOX)
    drop_box(BOX)


class Deployment:
    """Intake (a writer whose runner is the work publisher) and distributed workers."""

    def __init__(self, db: Engine, broker: MemoryBroker, settings: ChannelsFile) -> None:
        self.db = db
        self.broker = broker
        self.config = settings
        self.publisher = WorkPublisher(settings.engine.work, broker)
        self.writer = Writer(db, Journal(db), self.publisher)
        self.workers: list[DistributedWorker] = []

    def worker(self, wrap: Callable[[Worker], Worker] = lambda w: w) -> DistributedWorker:
        worker = DistributedWorker(
            self.config, self.db, wrap(build_worker(self.config, self.db)), self.broker
        )
        self.workers.append(worker)
        return worker

    def __enter__(self) -> Deployment:
        self.publisher.start()
        self.writer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.stop()
        self.publisher.stop()
        for worker in self.workers:
            worker.stop()

    def send(self, rows: list[NewMessage]) -> list[int]:
        """Journal the rows as intake does (one commit a call); their ids."""
        answered = threading.Event()
        got: list[Result] = []

        def done(results: list[Result]) -> None:
            got.extend(results)
            answered.set()

        self.writer.submit(rows, done)
        assert answered.wait(10)
        return [r.id for r in got if isinstance(r, Appended)]


def delivered(db: Engine) -> int:
    query = select(messages.c.id).where(messages.c.state == State.DELIVERED)
    with db.connect() as conn:
        return len(conn.execute(query).all())


def wait_for(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def wait_queued(broker: MemoryBroker, items: int) -> None:
    """Until the publisher put ``items`` on the queue in all."""
    wait_for(lambda: broker.depth() == items)


def assert_each_once_in_patient_order(memory: MemoryBox, ids: list[int]) -> None:
    kept = [k.message_id for k in memory.kept]
    assert sorted(kept) == sorted(ids)  # every message, each once
    for patient in range(PATIENTS):
        theirs = [i for i in kept if ids.index(i) % PATIENTS == patient]
        assert theirs == sorted(theirs), f"patient {patient} out of order"


def test_two_workers_apply_every_message_once_in_each_patients_order(
    db: Engine, memory: MemoryBox
) -> None:
    broker = MemoryBroker()
    with Deployment(db, broker, config()) as deployment:
        for _ in range(2):
            deployment.worker().start()
        ids: list[int] = []
        for start in range(0, 120, 6):  # commits of a few messages, as senders send them
            ids += deployment.send([adt(n) for n in range(start, start + 6)])
        wait_for(lambda: delivered(db) == len(ids))
    assert_each_once_in_patient_order(memory, ids)
    assert broker.published == len(ids) and broker.depth() == 0


class Recording(DistributedWorker):
    """Records the items of each batch it runs from the queue."""

    batches: list[list[int]]

    def run_items(self, session: WorkSession | None, items: list[WorkItem]) -> None:
        if session is not None:
            self.batches.append([i.id for i in items])
        super().run_items(session, items)


def test_a_commit_is_one_body_and_a_batch_gathers_bodies_up_to_its_size(
    db: Engine, memory: MemoryBox
) -> None:
    broker = MemoryBroker()
    with Deployment(db, broker, config()) as deployment:  # batch: 8
        ids: list[int] = []
        for start in range(0, 12, 4):  # 3 commits: 3 bodies of 4 items
            ids += deployment.send([adt(n) for n in range(start, start + 4)])
            wait_queued(broker, len(ids))
        assert len(broker.ready) == 3
        worker = Recording(deployment.config, db, build_worker(deployment.config, db), broker)
        worker.batches = []
        deployment.workers.append(worker)
        worker.start()
        wait_for(lambda: delivered(db) == len(ids))
    assert worker.batches[:2] == [ids[:8], ids[8:]]
    assert (broker.published, broker.acked, broker.depth()) == (12, 12, 0)
    assert_each_once_in_patient_order(memory, ids)


class FailsOnce(Worker):
    """The database goes away during the first batch."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker.engine, worker.journal, worker.pipelines)
        self.failed = False

    def run(self, groups=None, interrupt=None) -> Ran:  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed = True
            raise OperationalError("SELECT", {}, Exception("database is locked"))
        return super().run(groups, interrupt)


def test_a_failed_batch_goes_back_to_the_queue_and_is_applied_once(
    db: Engine, memory: MemoryBox
) -> None:
    broker = MemoryBroker()
    with Deployment(db, broker, config()) as deployment:
        ids = deployment.send([adt(n) for n in range(12)])
        deployment.worker(FailsOnce).start()
        wait_for(lambda: delivered(db) == len(ids))
    assert broker.requeued > 0  # given back, then delivered again
    assert_each_once_in_patient_order(memory, ids)


def test_items_of_a_worker_killed_with_them_in_hand_go_to_another_worker(
    db: Engine, memory: MemoryBox
) -> None:
    broker = MemoryBroker()
    with Deployment(db, broker, config()) as deployment:
        ids: list[int] = []
        for start in range(0, 16, 4):  # 4 commits: 4 bodies of 4 items
            ids += deployment.send([adt(n) for n in range(start, start + 4)])
            wait_queued(broker, len(ids))
        killed = broker.open(consume=True)
        assert len(killed.receive(3, 0.05)) == 3
        killed.close()  # killed before its commit: nothing acknowledged
        deployment.worker().start()
        wait_for(lambda: delivered(db) == len(ids))
    assert broker.requeued == 12
    assert_each_once_in_patient_order(memory, ids)


def test_messages_journaled_while_the_broker_is_away_are_taken_by_the_sweep(
    db: Engine, memory: MemoryBox
) -> None:
    broker = MemoryBroker()
    broker.down()
    with Deployment(db, broker, config(stale=0.2)) as deployment:
        ids = deployment.send([adt(n) for n in range(10)])
        with db.begin() as conn:  # journaled a while ago
            old = utcnow() - timedelta(seconds=5)
            conn.execute(update(messages).values(updated_at=old))
        deployment.worker().start()  # it sweeps while it waits for the broker
        wait_for(lambda: delivered(db) == len(ids))
    assert broker.published == 0  # nothing reached the queue: the sweep found them
    assert_each_once_in_patient_order(memory, ids)


class ClumsyBroker(MemoryBroker):
    """A broker whose consuming sessions fail to close once their connection is lost, as
    pika's channel did (its ``cancel`` asserts on consumer state the lost connection cleared)."""

    def open(self, *, consume: bool = False, declare: bool = True) -> MemorySession:
        session = super().open(consume=consume, declare=declare)
        if not consume:
            return session
        closing = session.close

        def close() -> None:
            if not session.open:
                raise AssertionError("ctag1.lost")
            closing()

        session.close = close  # type: ignore[method-assign]
        return session


def test_a_worker_whose_session_fails_to_close_after_a_lost_broker_reconnects(
    db: Engine, memory: MemoryBox
) -> None:
    broker = ClumsyBroker()
    with Deployment(db, broker, config()) as deployment:
        worker = deployment.worker()
        worker.start()
        first = deployment.send([adt(n) for n in range(8)])
        wait_for(lambda: delivered(db) == len(first))
        broker.down()  # the session is lost; closing it raises
        time.sleep(0.3)
        broker.up()
        later = deployment.send([adt(n) for n in range(8, 16)])
        wait_for(lambda: delivered(db) == len(first) + len(later))
        assert worker._thread is not None and worker._thread.is_alive()
    assert_each_once_in_patient_order(memory, first + later)
