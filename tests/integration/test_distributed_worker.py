"""The worker role's sweep and items, on PostgreSQL without a broker: messages of channels it
does not run are left alone (neither processed nor a crash), and a retry that falls due takes
its patient's later messages with it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text, update

from engine.channels.loader import parse_channels
from engine.db import make_engine
from engine.distributed.consumer import DistributedWorker
from engine.distributed.items import WorkItem
from engine.journal.claim import lock_key
from engine.journal.journal import Journal, utcnow
from engine.journal.message_tables import messages
from engine.journal.records import NewMessage
from engine.migrate import upgrade
from engine.runtime.wiring import build_worker
from tests.integration.identity_harness import adt, pid
from tests.integration.inprocess import ADT_CHANNEL, ENGINE_HEAD

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def journal(db: Engine, channel: str, control_id: str, key: str) -> int:
    row = NewMessage(
        channel=channel,
        raw=adt("A28", pid(key, ""), control_id).encode(),
        control_id=control_id,
        message_type="ADT",
        trigger="A28",
        patient_key=f"{key}^CHU-X",
        charset="utf-8",
    )
    with db.connect() as conn:
        [appended] = Journal(db).append(conn, [row])
        # Old enough for the sweep: as if its work item had been lost with the broker.
        conn.execute(
            update(messages)
            .where(messages.c.id == appended.id)
            .values(updated_at=utcnow() - timedelta(minutes=5))
        )
        conn.commit()
    return appended.id


def states(db: Engine) -> dict[str, str]:
    with db.connect() as conn:
        return dict(conn.execute(text("SELECT control_id, state FROM journal_messages")).all())


def worker(db: Engine, url: str) -> DistributedWorker:
    config = parse_channels((ENGINE_HEAD + ADT_CHANNEL).format(url=url, port=2575))
    return DistributedWorker(config, db, build_worker(config, db))


def test_messages_of_a_channel_the_worker_does_not_run_are_left_alone(
    db: Engine, postgres_url: str
) -> None:
    ghost = journal(db, "retired_channel", "G1", "IPP9")
    journal(db, "adt", "A1", "IPP1")
    running = worker(db, postgres_url)
    running.sweep(None)  # finds only its own channel's message
    running.run_items(None, [WorkItem(ghost, "retired_channel", "IPP9^CHU-X")])
    assert states(db) == {"G1": "received", "A1": "delivered"}


def test_a_retry_falling_due_takes_its_patients_later_messages_with_it(
    db: Engine, postgres_url: str
) -> None:
    first = journal(db, "adt", "A1", "IPP1")
    later = journal(db, "adt", "A2", "IPP1")
    with db.begin() as conn:  # the first failed once, its retry is now due; the second is
        conn.execute(  # recent and waits behind it (no work item will come for it)
            update(messages)
            .where(messages.c.id == first)
            .values(state="retrying", next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        conn.execute(update(messages).where(messages.c.id == later).values(updated_at=utcnow()))
    worker(db, postgres_url).sweep(None)
    assert states(db) == {"A1": "delivered", "A2": "delivered"}


def test_a_patient_another_worker_holds_is_not_waited_for(db: Engine, postgres_url: str) -> None:
    held = journal(db, "adt", "A1", "IPP1")
    other = journal(db, "adt", "B1", "IPP2")
    running = worker(db, postgres_url)
    group = WorkItem(held, "adt", "IPP1^CHU-X").group
    with db.connect() as conn:  # another worker is busy with IPP1 (a slow destination)
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(group)})
        upto = {group: held, WorkItem(other, "adt", "IPP2^CHU-X").group: other}
        ran = running.worker.run(upto)
        conn.rollback()
    assert (ran.handled, ran.released, ran.busy) == (1, [], {group})
    assert states(db) == {"A1": "received", "B1": "delivered"}
