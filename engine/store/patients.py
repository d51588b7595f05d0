"""The record store's patients as identities: creation, updates and the identity history.
Every change is recorded with the message that caused it, and forgets the pipeline batch's
patient lookups (:mod:`engine.store.patient_lookups`, re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from engine.errors import TransientError
from engine.fastsql import insert_into
from engine.hl7v2.values import parse_date
from engine.identity.model import STRICT_TRAITS, LocalId, trait_key
from engine.store import trait_keys
from engine.store.patient_lookups import (
    StoredPatient,
    _lookup,
    by_id,
    by_ins,
    forget,
    lookup,
    prefetch,
)
from engine.store.record_core import identity_events, merges, patient_identifiers, patients

__all__ = ["StoredPatient", "_lookup", "by_id", "by_ins", "forget", "lookup", "prefetch"]

_p = patients.c
_i = patient_identifiers.c
#: A local identifier's fields as the identity history keeps them.
ID_FIELDS = ("value", "authority", "authority_oid", "type_code")


def identity_keys(ins_values: Iterable[str], local_ids: Iterable[LocalId]) -> tuple[str, ...]:
    """The hold keys of an identity: what a held message waits for, what a patient releases."""
    return (*(ins_key(v) for v in ins_values), *(k for i in local_ids for k in local_keys(i)))


def ins_key(value: str) -> str:
    return f"ins:{value}"


def local_keys(ident: LocalId) -> tuple[str, ...]:
    return tuple(f"local:{k}" for k in ident.keys)


_INSERT_PATIENT = insert_into(patients, returning=_p.id)
_INSERT_IDENTIFIER = insert_into(patient_identifiers)
#: A new patient row: "" for the text columns (absent HL7 values), None for the others.
_BLANK: dict[str, Any] = {
    c.name: "" if c.server_default is not None else None for c in patients.columns if c.name != "id"
}


def create(conn: Connection, values: dict[str, Any], message_id: int | None, now: datetime) -> int:
    """A new patient from column values (traits, INS, demographics), with its trait key."""
    forget(conn)
    row = dict(_BLANK)
    row.update(values, created_at=now, updated_at=now, last_message_id=message_id)
    try:
        patient_id = int(_INSERT_PATIENT.execute(conn, row)[0][0])
    except IntegrityError as exc:  # the INS was stored concurrently: the retry will find it
        raise TransientError("a patient with this INS was stored concurrently") from exc
    record(conn, patient_id, message_id, now, "created", _visible(values))
    key = trait_key(*(row[t] for t in STRICT_TRAITS))
    if key is not None:
        trait_keys.add(conn, patient_id, key)
    return patient_id


def change(
    conn: Connection,
    patient_id: int,
    changes: dict[str, Any],
    message_id: int | None,
    now: datetime,
    event: str,
    detail: dict[str, Any] | None = None,
    actor: str = "engine",
    reason: str = "",
) -> None:
    """Update a patient's columns and record why."""
    forget(conn)
    if "birth_date" in changes:
        changes = {**changes, "birth_date_parsed": parse_date(changes["birth_date"])}
    conn.execute(
        update(patients)
        .where(_p.id == patient_id)
        .values(**changes, updated_at=now, last_message_id=message_id)
    )
    if changes.keys() & set(STRICT_TRAITS):
        trait_keys.set_key(conn, patient_id)
    record(conn, patient_id, message_id, now, event, detail or _visible(changes), actor, reason)


def update_contact(
    conn: Connection, patient_id: int, values: dict[str, Any], message_id: int, now: datetime
) -> None:
    """Address and phone: demographics, not identity (no history line)."""
    forget(conn)
    conn.execute(
        update(patients)
        .where(_p.id == patient_id)
        .values(**values, updated_at=now, last_message_id=message_id)
    )


def add_local_ids(
    conn: Connection, patient_id: int, ids: list[LocalId], message_id: int | None, now: datetime
) -> None:
    if not ids:
        return
    forget(conn)
    rows = [
        {
            "patient_id": patient_id,
            "value": i.value,
            "authority": i.authority,
            "authority_oid": i.authority_oid,
            "type_code": i.type_code,
        }
        for i in ids
    ]
    try:
        _INSERT_IDENTIFIER.executemany(conn, rows)
    except IntegrityError as exc:
        raise TransientError("a patient identifier was stored concurrently; retrying") from exc


def local_ids(conn: Connection, patient_id: int) -> list[tuple[str, str, str]]:
    """The patient's local identifiers: (value, authority, authority OID) each."""
    rows = conn.execute(
        select(_i.value, _i.authority, _i.authority_oid).where(_i.patient_id == patient_id)
    )
    return [(r[0], r[1], r[2]) for r in rows]


def new_local_ids(conn: Connection, patient_id: int, ids: tuple[LocalId, ...]) -> list[LocalId]:
    """Those of ``ids`` the patient does not hold yet (in any CX-4 form)."""
    owned = local_ids(conn, patient_id)
    return [i for i in ids if not any(i.same_as(*row) for row in owned)]


def ids_with_ins(conn: Connection, ins: str) -> list[int]:
    """The patients whose own row holds this INS (exactly as given), merges not followed. A
    merge moves the absorbed patient's INS to the survivor (``pipeline.identify.merge``), so
    the INS names the patient that holds it now; :func:`held_identifiers` adds, for the
    operators' search, the identities merged into it."""
    # "ins != ''" lets SQLite use the partial unique index on the INS.
    return list(conn.execute(select(_p.id).where(_p.ins == ins, _p.ins != "")).scalars())


def ids_with_local_id(conn: Connection, value: str, authority: str = "") -> list[int]:
    """The patients holding a local identifier of this value, each once, in the order found,
    merges not followed. ``authority`` is matched against both CX-4 forms (the namespace,
    CX-4.1, or the OID, CX-4.2), since operators write either; empty: any authority."""
    query = select(_i.patient_id).where(_i.value == value)
    if authority:
        query = query.where(or_(_i.authority == authority, _i.authority_oid == authority))
    return list(dict.fromkeys(conn.execute(query).scalars()))


class HeldIdentifiers(NamedTuple):
    """Identifiers held by a group of patients, each as stored (duplicates not removed)."""

    local: list[tuple[str, str, str]]  # (value, authority, authority OID)
    ins: list[str]  # the INS that are not empty


def held_identifiers(conn: Connection, patient_ids: Collection[int]) -> HeldIdentifiers:
    """The local identifiers and INS of these patients and of the patients a merge that was not
    undone absorbed directly into one of them: the journal knows a patient by whichever of its
    identities a message carried (an absorbed patient's local identifiers stay its own; its
    INS, which a merge moves to the survivor, is read where it now is)."""
    if not patient_ids:
        return HeldIdentifiers([], [])
    absorbed = conn.execute(
        select(merges.c.absorbed_id).where(
            merges.c.survivor_id.in_(patient_ids), merges.c.undone_at.is_(None)
        )
    ).scalars()
    every = [*patient_ids, *absorbed]
    local = [
        (r[0], r[1], r[2])
        for r in conn.execute(
            select(_i.value, _i.authority, _i.authority_oid).where(_i.patient_id.in_(every))
        )
    ]
    ins = conn.execute(select(_p.ins).where(_p.id.in_(every), _p.ins != "")).scalars()
    return HeldIdentifiers(local, list(ins))


class Standing(NamedTuple):
    """A patient's own row, merges not followed."""

    ins: str  # "" when none
    merged_into: int | None  # the survivor that absorbed it; None when it stands alone


def standing(conn: Connection, patient_id: int) -> Standing:
    """The patient's own INS and the patient it was merged into (not following merges, as
    :func:`by_id` does); raises ``NoResultFound`` when there is no such patient."""
    row = conn.execute(select(_p.ins, _p.merged_into).where(_p.id == patient_id)).one()
    return Standing(row[0], row[1])


def remove_local_ids(
    conn: Connection, patient_id: int, former: tuple[LocalId, ...], kept: tuple[LocalId, ...]
) -> list[dict[str, str]]:
    """Remove the patient's identifiers that ``former`` names and ``kept`` does not repeat (an
    A47); returns them, as the identity history keeps them."""
    rows = conn.execute(
        select(_i.id, _i.value, _i.authority, _i.authority_oid, _i.type_code).where(
            _i.patient_id == patient_id
        )
    ).all()
    gone = [
        r
        for r in rows
        if any(f.same_as(r[1], r[2], r[3]) for f in former)
        and not any(c.same_as(r[1], r[2], r[3]) for c in kept)
    ]
    if gone:
        conn.execute(delete(patient_identifiers).where(_i.id.in_([r[0] for r in gone])))
    return [dict(zip(ID_FIELDS, r[1:], strict=True)) for r in gone]


def record(
    conn: Connection,
    patient_id: int,
    message_id: int | None,
    now: datetime,
    event: str,
    detail: dict[str, Any],
    actor: str = "engine",
    reason: str = "",
) -> None:
    """One line of the patient's identity history (stored, never logged: it holds traits)."""
    conn.execute(
        insert(identity_events).values(
            patient_id=patient_id,
            message_id=message_id,
            at=now,
            event=event,
            detail=json.dumps(detail, default=str, ensure_ascii=False, sort_keys=True),
            actor=actor,
            reason=reason,
        )
    )


def _visible(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in ("", None)}
