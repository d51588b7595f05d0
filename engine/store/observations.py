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
from engine.transforms.map_oru import ObservationRecord, OrderRecord

#: The columns whose values add_observations converts itself (once per distinct value); any
#: other conversion a dialect asks for is applied by the insert (RowsInsert.convert).
_TIMES = ("observed_at", "created_at")
_ORDER = ("placer_number", "filler_number", "code", "code_system", "text")
if (
    OBSERVATION_INSERT.columns
    != (
        "patient_id",
        "message_id",
        "document_row",
        *(f"order_{name}" for name in _ORDER),
        *ObservationRecord._fields[1:13],  # a row takes them as one slice
        *_TIMES,
    )
    or ObservationRecord._fields[13] != "observed_at"
):
    raise RuntimeError("store_observations or ObservationRecord changed: update _rows")


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
    """The rows of the records, in the insert's column order, converted for ``dialect`` (ten
    a result message, on the hot path): the fields of a record's order once per order, its
    stored fields as one slice, each time converted once (consecutive records share them)."""
    observed, when_created = _converters(dialect)
    created = when_created(now)
    rows: list[Sequence[Any]] = []
    order: OrderRecord | None = None
    placer = filler = code = system = text = ""
    at: object = _NONE
    stored_at: Any = None
    for o in records:
        if o.order is not order:
            order = o.order
            placer, filler = order.placer_number, order.filler_number
            code, system, text = order.code, order.code_system, order.text
        if o.observed_at is not at:
            at = o.observed_at
            stored_at = observed(at)
        rows.append(
            (
                patient_id,
                message_id,
                document_row,
                placer,
                filler,
                code,
                system,
                text,
                *o[1:13],
                stored_at,
                created,
            )
        )
    return OBSERVATION_INSERT.convert(dialect, rows, done=_TIMES)


#: No value seen yet (None is a value: no observation time).
_NONE = object()


def _converters(dialect: Dialect) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """The conversions of observed_at and created_at on ``dialect`` (the insert's)."""
    found = _CONVERTERS.get(dialect.name)
    if found is None:
        observed, created = (OBSERVATION_INSERT.processor(dialect, c) for c in _TIMES)
        found = _CONVERTERS[dialect.name] = (observed or _same, created or _same)
    return found


_CONVERTERS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {}


def _same(value: Any) -> Any:
    return value
