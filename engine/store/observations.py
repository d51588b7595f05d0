"""Writing results into ``store_observations``, whatever carried them: an HL7 v2 OBX or an
entry of a CDA lab report (linked to its document). One row layout, one prepared statement
(the insert is on the ORU hot path)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from engine.store import batch
from engine.store.batch import OBSERVATION_INSERT
from engine.transforms.map_oru import ObservationRecord

#: The columns whose values add_observations converts itself (once per distinct value); any
#: other conversion a dialect asks for is applied by the insert (RowsInsert.convert).
_TIMES = ("observed_at", "created_at")
assert OBSERVATION_INSERT.columns == (
    "patient_id",
    "message_id",
    "document_row",
    "order_placer_number",
    "order_filler_number",
    "order_code",
    "order_code_system",
    "order_text",
    "set_id",
    "value_type",
    "code",
    "code_system",
    "code_text",
    "sub_id",
    "value",
    "unit",
    "reference_range",
    "abnormal_flags",
    "status",
    "observed_ts",
    *_TIMES,
), "store_observations changed: update _rows"


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
    rows = _rows(conn.dialect, records, patient_id, message_id, now, document_row)
    if rows and not batch.add_converted_observations(conn, rows):
        OBSERVATION_INSERT.insert.executemany_converted(conn, OBSERVATION_INSERT.columns, rows)
    return len(rows)


def _rows(
    dialect: Dialect,
    records: Iterable[ObservationRecord],
    patient_id: int,
    message_id: int,
    now: datetime,
    document_row: int | None,
) -> list[Sequence[Any]]:
    """The rows of the records, in the insert's column order, converted for ``dialect``: one
    tuple each, built in one expression (ten a result message, on the hot path)."""
    observed = _converter(dialect, "observed_at")
    created = _converter(dialect, "created_at")(now)
    rows: list[Sequence[Any]] = [
        (
            patient_id,
            message_id,
            document_row,
            (order := o.order).placer_number,
            order.filler_number,
            order.code,
            order.code_system,
            order.text,
            o.set_id,
            o.value_type,
            o.code,
            o.code_system,
            o.code_text,
            o.sub_id,
            o.value,
            o.unit,
            o.reference_range,
            o.abnormal_flags,
            o.status,
            o.observed_ts,
            observed(o.observed_at),
            created,
        )
        for o in records
    ]
    return OBSERVATION_INSERT.convert(dialect, rows, done=_TIMES)


def _converter(dialect: Dialect, column: str) -> Callable[[Any], Any]:
    found = OBSERVATION_INSERT.processor(dialect, column)
    return found if found is not None else _same


def _same(value: Any) -> Any:
    return value
