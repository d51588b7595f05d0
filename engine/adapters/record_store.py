"""The ``record_store`` destination: patients, encounters and results in the engine's database.

Writes run inside the pipeline's transaction (``Delivery.conn``): the caller commits them with
the message's end state, which is what makes delivery exactly-once. The hot path (ORU^R01) costs
two statements when the patient is known and unchanged: one SELECT of the message's identifiers
(joined to the patient), one executemany of the observations; plus one UPDATE when the
demographics changed, or INSERTs for a new patient or identifier. The read helpers live in
:mod:`engine.store.queries` and are re-exported here.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError

from engine.adapters.base import Delivery
from engine.errors import TransformError, TransientError
from engine.fastsql import FastStatement, insert_into
from engine.store.models import encounters, observations, patient_identifiers, patients
from engine.store.queries import counts, find_patient, patient_encounters, patient_observations
from engine.transforms.map_hl7 import (
    EncounterRecord,
    IdentifierRecord,
    ObservationRecord,
    PatientRecord,
    StoreOperation,
    map_message,
)

__all__ = [
    "RecordStore",
    "RecordStoreConfig",
    "counts",
    "find_patient",
    "patient_encounters",
    "patient_observations",
]

_DEMOGRAPHICS = (
    "family_name",
    "given_names",
    "birth_date",
    "sex",
    "birth_place",
    "address",
    "phone",
)
_ids = patient_identifiers.c

# Statements are built once: building and cache-keying a statement per message costs more than
# running it on SQLite. The identifier lookup has a fixed IN list per size (an "expanding" IN
# is re-rendered at every execution); the UPDATE takes its SET columns from the parameters.


@lru_cache(maxsize=16)
def _find_identifiers(count: int) -> FastStatement:
    """Identifiers with these values, with their patient's demographics (one round trip)."""
    return FastStatement(
        select(
            _ids.patient_id,
            _ids.value,
            _ids.authority,
            _ids.authority_oid,
            _ids.type_code,
            *(patients.c[f] for f in _DEMOGRAPHICS),
        )
        .join(patients, patients.c.id == _ids.patient_id)
        .where(_ids.value.in_([bindparam(f"v{i}") for i in range(count)]))
    )


#: Column positions of a ``_find_identifiers`` row's demographics.
_STORED = {f: 5 + i for i, f in enumerate(_DEMOGRAPHICS)}


_UPDATE_PATIENT = patients.update().where(patients.c.id == bindparam("patient_id_"))
_INSERT_PATIENT = insert_into(patients, returning=patients.c.id)
_INSERT_IDENTIFIERS = insert_into(patient_identifiers)
_INSERT_OBSERVATIONS = insert_into(observations)


class RecordStoreConfig(BaseModel):
    """Apply ADT and ORU^R01 messages to the shared record store (same database as the journal)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["record_store"]

    def build(self, name: str) -> RecordStore:
        return RecordStore(name)


class RecordStore:
    """Runtime of the record store destination."""

    transactional = True

    def __init__(self, name: str = "record_store") -> None:
        self.name = name

    def write(self, delivery: Delivery) -> None:
        op = map_message(delivery.message)
        self.apply(delivery.conn, delivery.message_id, op, delivery.now)

    def apply(self, conn: Connection, message_id: int, op: StoreOperation, now: datetime) -> int:
        """Apply ``op`` in the caller's transaction; returns the patient's id."""
        patient_id = self._upsert_patient(conn, message_id, op.patient, now)
        if op.encounter is not None:
            _upsert_encounter(conn, patient_id, message_id, op.encounter, now)
        if op.observations:
            rows = [_observation_row(o, patient_id, message_id, now) for o in op.observations]
            _INSERT_OBSERVATIONS.executemany(conn, rows)
        return patient_id

    def _upsert_patient(
        self, conn: Connection, message_id: int, patient: PatientRecord, now: datetime
    ) -> int:
        wanted = {i.key: i for i in patient.identifiers}
        values = list({i.value for i in patient.identifiers})
        found = _find_identifiers(len(values)).execute(
            conn, {f"v{i}": v for i, v in enumerate(values)}
        )
        owners: dict[tuple[str, str, str, str], int] = {}
        stored: tuple[Any, ...] = ()
        for row in found:
            key = (row[1], row[2], row[3], row[4])
            if key in wanted:
                owners[key] = row[0]
                stored = row
        if len(set(owners.values())) > 1:
            raise TransformError(_conflict(owners, wanted))
        new = [i for k, i in wanted.items() if k not in owners]
        demographics = {f: getattr(patient, f) for f in _DEMOGRAPHICS}
        if owners:
            patient_id = next(iter(owners.values()))
            # Non-empty incoming values overwrite; a message that changes nothing (the usual
            # ORU) writes nothing, so updated_at and last_message_id name the last change.
            changes: dict[str, Any] = {
                k: v for k, v in demographics.items() if v and v != stored[_STORED[k]]
            }
            if "birth_date" in changes:
                changes["birth_date_parsed"] = patient.birth_date_parsed
            if changes or new:
                changes.update(patient_id_=patient_id, updated_at=now, last_message_id=message_id)
                conn.execute(_UPDATE_PATIENT, changes)
        else:
            new_patient = {
                **demographics,
                "birth_date_parsed": patient.birth_date_parsed,
                "created_at": now,
                "updated_at": now,
                "last_message_id": message_id,
            }
            patient_id = int(_INSERT_PATIENT.execute(conn, new_patient)[0][0])
        if new:
            _insert_identifiers(conn, patient_id, new)
        return patient_id


def _insert_identifiers(conn: Connection, patient_id: int, new: list[IdentifierRecord]) -> None:
    rows = [
        {
            "patient_id": patient_id,
            "value": i.value,
            "authority": i.authority,
            "authority_oid": i.authority_oid,
            "type_code": i.type_code,
        }
        for i in new
    ]
    try:
        _INSERT_IDENTIFIERS.executemany(conn, rows)
    except IntegrityError as exc:
        # Another worker stored the same identifier after our SELECT: on retry we will find it.
        raise TransientError("a patient identifier was stored concurrently; retrying") from exc


def _conflict(
    owners: dict[tuple[str, str, str, str], int], wanted: dict[Any, IdentifierRecord]
) -> str:
    # Name identifier types and authorities, not values: reasons reach logs (contract 8).
    parts = []
    for key, pid in sorted(owners.items(), key=lambda kv: kv[1]):
        ident = wanted[key]
        where = ident.authority or ident.authority_oid or "no authority"
        parts.append(f"{ident.type_code or 'untyped'} of {where} -> patient {pid}")
    ids = sorted(set(owners.values()))
    return (
        f"identifiers of this message belong to {len(ids)} different patients "
        f"({'; '.join(parts)}): not guessing, identity review needed"
    )


def _upsert_encounter(
    conn: Connection, patient_id: int, message_id: int, enc: EncounterRecord, now: datetime
) -> None:
    e = encounters.c
    existing = conn.execute(
        select(e.id).where(
            e.patient_id == patient_id,
            e.visit_number == enc.visit_number,
            e.visit_authority == enc.visit_authority,
        )
    ).scalar()
    status = enc.status
    if status is None and enc.discharged_at is not None:
        status = "closed"
    values: dict[str, Any] = {
        k: v
        for k, v in (
            ("patient_class", enc.patient_class),
            ("location", enc.location),
            ("attending", enc.attending),
            ("admitted_at", enc.admitted_at),
            ("discharged_at", enc.discharged_at),
        )
        if v
    }
    if existing is None:
        conn.execute(
            encounters.insert().values(
                **values,
                patient_id=patient_id,
                visit_number=enc.visit_number,
                visit_authority=enc.visit_authority,
                status=status or "open",
                created_at=now,
                updated_at=now,
                last_message_id=message_id,
            )
        )
        return
    if status is not None:
        values["status"] = status
    if enc.status == "open":  # a cancelled discharge (A13)
        values["discharged_at"] = None
    conn.execute(
        encounters.update()
        .where(e.id == existing)
        .values(**values, updated_at=now, last_message_id=message_id)
    )


def _observation_row(
    o: ObservationRecord, patient_id: int, message_id: int, now: datetime
) -> dict[str, Any]:
    order = o.order
    return {
        "patient_id": patient_id,
        "message_id": message_id,
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
