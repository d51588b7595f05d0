"""A pipeline batch's observation rows go out in one statement when the batch is flushed (on
PostgreSQL a COPY, on SQLite one executemany): every row stored as the per-row INSERT stores
it, with its ids in the order the rows were added, and rolled back with the batch. Its end
states go out in one UPDATE per 64 messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from engine import fastsql
from engine.fastsql import COPY_FROM, RowsInsert
from engine.journal.journal import MARK_IDS, Journal
from engine.journal.message_tables import State, messages
from engine.journal.records import NewMessage
from engine.store import batch
from engine.store.record_core import observations, patients
from tests.integration.test_worker_batches import counted

NOW = datetime(2026, 12, 3, 10, 0, 1, 250000, tzinfo=UTC)


@pytest.fixture
def db(migrated_db: Engine) -> Engine:
    return migrated_db


def a_patient(db: Engine) -> int:
    with db.begin() as conn:
        row = conn.execute(
            insert(patients).values(created_at=NOW, updated_at=NOW).returning(patients.c.id)
        )
        return int(row.scalar_one())


def rows(patient: int, count: int) -> list[dict[str, Any]]:
    """Rows of every kind of value: shared and own timestamps, NULLs, empty and non-ASCII
    text, a tab and a newline (COPY's text format would have to escape them)."""
    out = []
    for n in range(count):
        out.append(
            {
                c.name: ""
                for c in observations.columns
                if c.name not in ("id", "patient_id", "message_id")
            }
            | {
                "patient_id": patient,
                "message_id": 10**12 + n % 3,
                "document_row": None if n % 2 else n,
                "set_id": str(n),
                "code_text": "Hémoglobine\tglyquée\n\\N" if n % 4 == 0 else f"code {n}",
                "value": "" if n % 5 == 0 else f"{n}.5",
                "observed_at": None if n % 3 == 0 else NOW + timedelta(minutes=n),
                "created_at": NOW,
            }
        )
    return out


def stored(conn: Connection) -> list[dict[str, Any]]:
    found = conn.execute(select(observations).order_by(observations.c.id)).mappings().all()
    return [
        {k: (v.astimezone(UTC) if isinstance(v, datetime) else v) for k, v in r.items()}
        for r in found
    ]


def test_a_batch_rows_are_stored_as_the_insert_stores_them_in_the_order_added(
    db: Engine,
) -> None:
    patient = a_patient(db)
    given = rows(patient, 3 * COPY_FROM)
    with db.connect() as conn, counted(db) as seen:
        with batch.opened(conn):
            assert batch.add_observation_rows(conn, given[:COPY_FROM])
            assert batch.add_observation_rows(conn, given[COPY_FROM:])
            assert stored(conn) == []  # they wait for the flush
            batch.flush(conn)
        conn.commit()
    writes = [s for s in seen.sql if "store_observations" in s and not s.startswith("SELECT")]
    expected = "COPY" if db.dialect.name == "postgresql" else "INSERT"
    assert [s.split()[0] for s in writes] == [expected]
    with db.connect() as conn:
        got = stored(conn)
    assert [{k: v for k, v in r.items() if k != "id"} for r in got] == given
    ids = [r["id"] for r in got]
    assert ids == sorted(ids) and len(set(ids)) == len(given)
    # The one-row-at-a-time path stores the same values.
    with db.begin() as conn:
        fastsql.insert_into(observations).executemany(conn, given)
    with db.connect() as conn:
        again = stored(conn)[len(given) :]
    assert [{k: v for k, v in r.items() if k != "id"} for r in again] == given


def test_a_batch_rows_roll_back_with_the_batch(db: Engine) -> None:
    patient = a_patient(db)
    with db.connect() as conn:
        with batch.opened(conn):
            batch.add_observation_rows(conn, rows(patient, 2 * COPY_FROM))
            batch.flush(conn)
        count = select(func.count()).select_from(observations)
        assert conn.execute(count).scalar_one() == 2 * COPY_FROM  # written, not committed
        conn.rollback()
        assert conn.execute(count).scalar_one() == 0


def test_a_failing_copy_raises_sqlalchemy_error_and_leaves_nothing(db: Engine) -> None:
    """The engine tells failures apart by SQLAlchemy's types (IntegrityError...), whichever
    path ran the statement."""
    a_patient(db)
    missing = rows(10**9, COPY_FROM)  # no such patient: the foreign key refuses them
    with db.connect() as conn:
        with pytest.raises(IntegrityError):
            RowsInsert(observations).run(conn, missing)
        conn.rollback()
        assert conn.execute(select(func.count()).select_from(observations)).scalar_one() == 0


def test_a_batch_end_states_go_out_in_one_update_per_mark_ids_messages(db: Engine) -> None:
    journal = Journal(db)
    payload = b"MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5"
    with db.connect() as conn:
        ids = [a.id for a in journal.append(conn, [NewMessage(channel="c", raw=payload)] * 140)]
    delivered = ids[: 2 * MARK_IDS + 3]
    with db.connect() as conn, counted(db) as seen:
        journal.finish_many(conn, delivered, NOW)
        conn.rollback()  # the end states go with the batch's transaction
        states = {state for (state,) in conn.execute(select(messages.c.state))}
    assert len([s for s in seen.sql if s.startswith("UPDATE journal_messages")]) == 3
    assert states == {State.RECEIVED}
    with db.connect() as conn:
        journal.finish_many(conn, delivered, NOW)
        conn.commit()
        found = dict(conn.execute(select(messages.c.id, messages.c.state)).all())
    assert [found[i] for i in ids] == [State.DELIVERED] * len(delivered) + [State.RECEIVED] * (
        len(ids) - len(delivered)
    )
