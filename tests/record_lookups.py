"""Read queries on the record store for the tests: what a destination wrote, read back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, or_, select

from engine.store.record_core import encounters, observations, patient_identifiers, patients

_ids = patient_identifiers.c


def find_patient(conn: Connection, value: str, authority: str = "") -> dict[str, Any] | None:
    """The patient holding identifier ``value`` (under ``authority``, matched against CX-4.1 or
    CX-4.2, when given), with its ``identifiers``; None if none. Raises LookupError when
    several patients match (give the authority)."""
    query = select(_ids.patient_id).where(_ids.value == value).distinct()
    if authority:
        query = query.where(or_(_ids.authority == authority, _ids.authority_oid == authority))
    ids = list(conn.execute(query).scalars())
    if not ids:
        return None
    if len(ids) > 1:
        raise LookupError(f"{len(ids)} patients hold this identifier: give its authority")
    row = conn.execute(select(patients).where(patients.c.id == ids[0])).one()
    patient = dict(row._mapping)
    idents = conn.execute(
        select(_ids.value, _ids.authority, _ids.authority_oid, _ids.type_code)
        .where(_ids.patient_id == ids[0])
        .order_by(_ids.id)
    )
    patient["identifiers"] = [dict(r._mapping) for r in idents]
    return patient


def patient_observations(conn: Connection, patient_id: int) -> list[dict[str, Any]]:
    """A patient's observations in the order they were stored."""
    query = (
        select(observations)
        .where(observations.c.patient_id == patient_id)
        .order_by(observations.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def patient_encounters(conn: Connection, patient_id: int) -> list[dict[str, Any]]:
    """A patient's encounters in the order they were created."""
    query = (
        select(encounters).where(encounters.c.patient_id == patient_id).order_by(encounters.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def counts(conn: Connection) -> dict[str, int]:
    """Row counts: patients, identifiers, encounters, observations."""
    tables = {
        "patients": patients,
        "identifiers": patient_identifiers,
        "encounters": encounters,
        "observations": observations,
    }
    return {
        name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        for name, t in tables.items()
    }
