"""Stored patients found by INS and local identifier, following merges (a patient absorbed by
an A40 resolves to its survivor).

In a pipeline batch (:mod:`engine.store.batch`) the lookups are remembered, and the batch's
patients can be fetched ahead in one statement (:func:`prefetch`) for every INS and local
identifier value its messages carry; a lookup whose values were all fetched ahead is answered
from memory exactly as the query would answer it. Any change to a patient, and any settling of
the batch, forgets both (:func:`forget`): a message after an ADT, a merge or an A47 of the same
batch reads the store again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, literal_column, select, union_all
from sqlalchemy.sql import ColumnElement

from engine.fastsql import FastStatement
from engine.identity.model import TRAIT_NAMES, LocalId, Traits
from engine.store import batch
from engine.store.record_core import patient_identifiers, patients

_p = patients.c
_i = patient_identifiers.c
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
#: Where the batch's lookups keep what :func:`prefetch` fetched (their other keys are tuples).
_PREFETCHED = "prefetched"
#: Values of each kind a prefetch statement takes (unused places are NULL).
PREFETCH_WIDTH = 128

Found = tuple[dict[int, "StoredPatient"], dict[int, "StoredPatient"]]


@dataclass(frozen=True, slots=True)
class StoredPatient:
    id: int
    ins: str
    ins_oid: str
    identity_status: str
    traits: Traits
    address: str = ""
    phone: str = ""


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


def by_ins(conn: Connection, values: list[str]) -> dict[int, StoredPatient]:
    """The patients holding any of these INS, by id."""
    return lookup(conn, values, ())[0]


def lookup(conn: Connection, ins_values: list[str], ids: tuple[LocalId, ...]) -> Found:
    """The patients holding any of these INS, and those holding these local identifiers
    (value and authority), by id."""
    values = sorted({i.value for i in ids})
    if not ins_values and not values:
        return {}, {}
    pending = batch.current(conn)  # a pipeline batch remembers its lookups
    key = (tuple(ins_values), ids)
    if pending is not None:
        found = pending.lookups.get(key)
        if found is None:
            prefetched: Prefetched | None = pending.lookups.get(_PREFETCHED)
            found = None if prefetched is None else prefetched.answer(ins_values, ids, values)
        if found is not None:
            pending.lookups[key] = found
            return dict(found[0]), dict(found[1])
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


def forget(conn: Connection) -> None:
    """A patient changed: the batch's remembered and prefetched lookups may be stale."""
    pending = batch.current(conn)
    if pending is not None:
        pending.lookups.clear()


@dataclass(frozen=True, slots=True)
class Prefetched:
    """The patients holding the values fetched ahead, by value, merges followed."""

    ins_values: frozenset[str]
    local_values: frozenset[str]
    by_ins: dict[str, list[StoredPatient]]
    #: Local identifier value -> (authority, OID, patient) of each stored identifier.
    by_local: dict[str, list[tuple[str, str, StoredPatient]]]

    def answer(
        self, ins_values: list[str], ids: tuple[LocalId, ...], values: list[str]
    ) -> Found | None:
        """What :func:`lookup` would find, or None when a value was not fetched ahead."""
        if not self.ins_values.issuperset(ins_values) or not self.local_values.issuperset(values):
            return None
        found_ins = {p.id: p for v in ins_values for p in self.by_ins.get(v, ())}
        found_local = {
            p.id: p
            for v in values
            for authority, oid, p in self.by_local.get(v, ())
            if any(i.same_as(v, authority, oid) for i in ids)
        }
        return found_ins, found_local


def prefetched(conn: Connection) -> bool:
    """Whether the open batch holds patients fetched ahead (not forgotten since)."""
    pending = batch.current(conn)
    return pending is not None and _PREFETCHED in pending.lookups


def prefetch(conn: Connection, ins_values: Collection[str], local_values: Collection[str]) -> None:
    """Fetch the patients holding any of these values for the open batch's lookups, in one
    statement per :data:`PREFETCH_WIDTH` values of each kind (nothing outside a batch)."""
    pending = batch.current(conn)
    if pending is None or not (ins_values or local_values):
        return
    ins, local = sorted(set(ins_values)), sorted(set(local_values))
    by_ins: dict[str, list[StoredPatient]] = {}
    by_local: dict[str, list[tuple[str, str, StoredPatient]]] = {}
    statement = _lookup(PREFETCH_WIDTH, PREFETCH_WIDTH)
    for start in range(0, max(len(ins), len(local)), PREFETCH_WIDTH):
        params: dict[str, str | None] = {}
        for prefix, chunk in (("i", ins[start:]), ("v", local[start:])):
            params.update(
                {
                    f"{prefix}{n}": chunk[n] if n < len(chunk) else None
                    for n in range(PREFETCH_WIDTH)
                }
            )
        for row in statement.execute(conn, params):
            patient = _follow(conn, row[4:])
            if row[0] == "i":
                by_ins.setdefault(row[1], []).append(patient)
            else:
                by_local.setdefault(row[1], []).append((row[2], row[3], patient))
    pending.lookups[_PREFETCHED] = Prefetched(frozenset(ins), frozenset(local), by_ins, by_local)
