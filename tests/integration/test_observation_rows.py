"""Observation rows built as tuples and converted once per value (``add_observations``) are
stored exactly as the rows by column name through the compiled INSERT stored them: in a
pipeline batch (one executemany on SQLite, one COPY on PostgreSQL) and outside one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select

from engine import fastsql
from engine.fastsql import COPY_FROM
from engine.hl7v2.values import DEFAULT_TZ
from engine.store import batch
from engine.store.observations import add_observations
from engine.store.record_core import observations
from engine.transforms.map_oru import NO_ORDER, ObservationRecord, OrderRecord
from tests.integration.test_batch_rows import NOW, a_patient


@pytest.fixture
def db(migrated_db: Engine) -> Engine:
    return migrated_db


def records(count: int) -> list[ObservationRecord]:
    """Every kind of value: orders and none, shared, own, local, offset and missing times,
    empty and non-ASCII text, a tab, a newline and a backslash."""
    order = OrderRecord("P1", "F1", "24323-8", "LN", "Bilan", "20261203")
    out = []
    for n in range(count):
        observed_at = (
            None
            if n % 4 == 0
            else datetime(2026, 12, 3, 9, n % 60, tzinfo=DEFAULT_TZ)
            if n % 4 == 1
            else datetime(2026, 7, 1, 8, tzinfo=timezone(timedelta(hours=-5)))
            if n % 4 == 2
            else NOW
        )
        out.append(
            ObservationRecord(
                order=order if n % 2 else NO_ORDER,
                set_id=str(n),
                value_type="NM" if n % 3 else "ST",
                code=f"code{n}",
                code_system="LN",
                code_text="Hémoglobine\tglyquée\n\\N" if n % 5 == 0 else f"text {n}",
                sub_id="",
                value="" if n % 7 == 0 else f"{n}.5",
                unit="mmol/L",
                reference_range="1-2",
                abnormal_flags="H~L" if n % 2 else "",
                status="F",
                observed_ts="" if observed_at is None else "20261203",
                observed_at=observed_at,
            )
        )
    return out


def by_name(
    o: ObservationRecord, patient_id: int, message_id: int, document_row: int | None
) -> dict[str, Any]:
    """The row as the previous code built it, for the compiled INSERT (the reference)."""
    order = o.order
    return {
        "patient_id": patient_id,
        "message_id": message_id,
        "document_row": document_row,
        "order_placer_number": order.placer_number,
        "order_filler_number": order.filler_number,
        "order_code": order.code,
        "order_code_system": order.code_system,
        "order_text": order.text,
        "set_id": o.set_id,
        "value_type": o.value_type,
        "code": o.code,
        "code_system": o.code_system,
        "code_text": o.code_text,
        "sub_id": o.sub_id,
        "value": o.value,
        "unit": o.unit,
        "reference_range": o.reference_range,
        "abnormal_flags": o.abnormal_flags,
        "status": o.status,
        "observed_ts": o.observed_ts,
        "observed_at": o.observed_at,
        "created_at": NOW,
    }


def stored(conn: Connection, message_id: int) -> list[dict[str, Any]]:
    o = observations.c
    found = conn.execute(
        select(observations).where(o.message_id == message_id).order_by(o.id)
    ).mappings()
    return [{k: v for k, v in r.items() if k != "id"} for r in found]


@pytest.mark.parametrize("in_batch", [True, False], ids=["batch", "alone"])
@pytest.mark.parametrize("document_row", [None, 7])
def test_observation_rows_are_stored_as_the_rows_by_column_name_were(
    db: Engine, in_batch: bool, document_row: int | None
) -> None:
    patient = a_patient(db)
    given = records(3 * COPY_FROM + 1)
    with db.connect() as conn:
        if in_batch:
            with batch.opened(conn):
                add_observations(conn, given[:5], patient, 1, NOW, document_row)
                add_observations(conn, given[5:], patient, 1, NOW, document_row)
                batch.flush(conn)
        else:
            add_observations(conn, given, patient, 1, NOW, document_row)
        fastsql.insert_into(observations).executemany(
            conn, [by_name(o, patient, 2, document_row) for o in given]
        )
        conn.commit()
    with db.connect() as conn:
        fast, reference = stored(conn, 1), stored(conn, 2)
    assert len(fast) == len(given)
    assert [r | {"message_id": 2} for r in fast] == reference
    assert {r["observed_at"] for r in fast} >= {NOW, None}


def test_rows_by_column_name_added_to_a_batch_match_rows_added_as_records(db: Engine) -> None:
    patient = a_patient(db)
    given = records(COPY_FROM)
    with db.connect() as conn:
        with batch.opened(conn):
            add_observations(conn, given, patient, 1, NOW)
            assert batch.add_observation_rows(conn, [by_name(o, patient, 2, None) for o in given])
            batch.flush(conn)
        conn.commit()
    with db.connect() as conn:
        assert [r | {"message_id": 2} for r in stored(conn, 1)] == stored(conn, 2)
