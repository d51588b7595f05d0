"""Writing results into ``store_observations``, whatever carried them: an HL7 v2 OBX or an
entry of a CDA lab report (linked to its document). One row layout, one prepared statement
(the insert is on the ORU hot path)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from engine.fastsql import insert_into
from engine.store import batch
from engine.store.record_core import observations
from engine.transforms.map_oru import ObservationRecord

_INSERT = insert_into(observations)


def add_observations(
    conn: Connection,
    records: Iterable[ObservationRecord],
    patient_id: int,
    message_id: int,
    now: datetime,
    document_row: int | None = None,
) -> int:
    """Insert the records in the caller's transaction; returns how many. In a pipeline batch
    the rows wait for the batch's one insert (:mod:`engine.store.batch`)."""
    rows = [_row(o, patient_id, message_id, now, document_row) for o in records]
    if rows and not batch.add_observation_rows(conn, rows):
        _INSERT.executemany(conn, rows)
    return len(rows)


def _row(
    o: ObservationRecord,
    patient_id: int,
    message_id: int,
    now: datetime,
    document_row: int | None,
) -> dict[str, Any]:
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
        "created_at": now,
    }
