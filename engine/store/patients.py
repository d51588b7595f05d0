"""The record store's patients as identities: lookups by INS and local identifier, creation,
updates and the identity history. Every change is recorded with the message that caused it.

Lookups follow merges: a patient absorbed by an A40 resolves to its survivor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from engine.errors import TransientError
from engine.fastsql import FastStatement, insert_into
from engine.hl7v2.values import parse_date
from engine.identity.model import STRICT_TRAITS, TRAIT_NAMES, LocalId, Traits, trait_key
from engine.store import batch, trait_keys
from engine.store.record_core import identity_events, patient_identifiers, patients

_p = patients.c
_i = patient_identifiers.c
#: A local identifier's fields as the identity history keeps them.
ID_FIELDS = ("value", "authority", "authority_oid", "type_code")
_PATIENT = (
    _p.id,
    _p.ins,
    _p.ins_oid,
    _p.identity_status,
    _p.merged_into,
    _p.address,
    _p.phone,
    *(_p[t] for t in TRAIT_NAMES),
)


@dataclass(frozen=True, slots=True)
class StoredPatient:
    id: int
    ins: str
    ins_oid: str
    identity_status: str
    traits: Traits
    address: str = ""
    phone: str = ""


def identity_keys(ins_values: Iterable[str], local_ids: Iterable[LocalId]) -> tuple[str, ...]:
    """The hold keys of an identity: what a held message waits for, what a patient releases."""
    return (*(ins_key(v) for v in ins_values), *(k for i in local_ids for k in local_keys(i)))


def ins_key(value: str) -> str:
    return f"ins:{value}"


def local_keys(ident: LocalId) -> tuple[str, ...]:
    return tuple(f"local:{k}" for k in ident.keys)


def _stored(row: Any) -> StoredPatient:
    return StoredPatient(row[0], row[1], row[2], row[3], Traits(*row[7:]), row[5], row[6])


_BY_ID = FastStatement(select(*_PATIENT).where(_p.id == bindparam("id")))
_NONE: ColumnElement[str] = literal_column("''")


@lru_cache(maxsize=32)
def _lookup(ins_count: int, local_count: int) -> FastStatement:
    """Patients holding these INS or local identifier values, in one round trip (fixed IN
    lists per size). Each row starts with ``i`` or ``l`` (which lookup found it) and the
    identifier's value, authority and OID."""
    parts = []
    if ins_count:
        # ``ins != ''`` repeats the partial unique index's condition: without it neither
        # SQLite nor PostgreSQL may use that index for a bound value (a full scan).
        parts.append(
            select(literal_column("'i'"), _p.ins, _NONE, _NONE, *_PATIENT).where(
                _p.ins.in_([bindparam(f"i{n}") for n in range(ins_count)]), _p.ins != _NONE
            )
        )
    if local_count:
        parts.append(
            select(literal_column("'l'"), _i.value, _i.authority, _i.authority_oid, *_PATIENT)
            .join(patients, _p.id == _i.patient_id)
            .where(_i.value.in_([bindparam(f"v{n}") for n in range(local_count)]))
        )
    return FastStatement(parts[0] if len(parts) == 1 else union_all(*parts))


def _follow(conn: Connection, row: Any) -> StoredPatient:
    seen = set()
    while row[4] is not None and row[0] not in seen:  # merged: resolve to the survivor
        seen.add(row[0])
        row = _BY_ID.execute(conn, {"id": row[4]})[0]
    return _stored(row)


def by_id(conn: Connection, patient_id: int) -> StoredPatient | None:
    rows = _BY_ID.execute(conn, {"id": patient_id})
    return _follow(conn, rows[0]) if rows else None


def lookup(
    conn: Connection, ins_values: list[str], ids: tuple[LocalId, ...]
) -> tuple[dict[int, StoredPatient], dict[int, StoredPatient]]:
    """The patients holding any of these INS, and those holding these local identifiers
    (value and authority), by id."""
    values = sorted({i.value for i in ids})
    if not ins_values and not values:
        return {}, {}
    pending = batch.current(conn)  # a pipeline batch remembers its lookups
    key = (tuple(ins_values), ids)
    if pending is not None and key in pending.lookups:
        cached_ins, cached_local = pending.lookups[key]
        return dict(cached_ins), dict(cached_local)
    params = {f"i{n}": v for n, v in enumerate(ins_values)}
    params.update({f"v{n}": v for n, v in enumerate(values)})
    by_ins: dict[int, StoredPatient] = {}
    by_local: dict[int, StoredPatient] = {}
    for row in _lookup(len(ins_values), len(values)).execute(conn, params):
        if row[0] == "i":
            patient = _follow(conn, row[4:])
            by_ins[patient.id] = patient
        elif any(i.same_as(row[1], row[2], row[3]) for i in ids):
            patient = _follow(conn, row[4:])
            by_local[patient.id] = patient
    if pending is not None:
        pending.lookups[key] = (dict(by_ins), dict(by_local))
    return by_ins, by_local


def _forget_lookups(conn: Connection) -> None:
    """A patient changed: the batch's remembered lookups may be stale."""
    pending = batch.current(conn)
    if pending is not None:
        pending.lookups.clear()


def by_ins(conn: Connection, values: list[str]) -> dict[int, StoredPatient]:
    """The patients holding any of these INS, by id."""
    return lookup(conn, values, ())[0]


_INSERT_PATIENT = insert_into(patients, returning=_p.id)
_INSERT_IDENTIFIER = insert_into(patient_identifiers)
#: A new patient row: "" for the text columns (absent HL7 values), None for the others.
_BLANK: dict[str, Any] = {
    c.name: "" if c.server_default is not None else None for c in patients.columns if c.name != "id"
}


def create(conn: Connection, values: dict[str, Any], message_id: int | None, now: datetime) -> int:
    """A new patient from column values (traits, INS, demographics), with its trait key."""
    _forget_lookups(conn)
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
    _forget_lookups(conn)
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
    _forget_lookups(conn)
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
    _forget_lookups(conn)
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


def new_local_ids(conn: Connection, patient_id: int, ids: tuple[LocalId, ...]) -> list[LocalId]:
    """Those of ``ids`` the patient does not hold yet (in any CX-4 form)."""
    owned = conn.execute(
        select(_i.value, _i.authority, _i.authority_oid).where(_i.patient_id == patient_id)
    ).all()
    return [i for i in ids if not any(i.same_as(*row) for row in owned)]


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
