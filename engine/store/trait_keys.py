"""Each patient's folded strict traits as one indexed key, kept beside the patient row.

Two patients with the same key are homonyms or probable duplicates: the key only points the
identity cell at them (matching stays on identifiers, :mod:`engine.pipeline.identify.resolve`). The
key
is folded in Python (:func:`engine.identity.model.fold`), which neither database can do in an
index expression, hence a table of its own rather than an expression index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from engine.identity.model import trait_key
from engine.store.identity_cell import trait_keys
from engine.store.record_core import patients

_p, _k = patients.c, trait_keys.c
_TRAITS = (_p.birth_name, _p.first_given_name, _p.birth_date, _p.sex)
_BACKFILL_CHUNK = 10_000


def add(conn: Connection, patient_id: int, key: str) -> None:
    """The key of a new patient."""
    conn.execute(insert(trait_keys).values(patient_id=patient_id, trait_key=key))


def set_key(conn: Connection, patient_id: int) -> str | None:
    """(Re)compute the patient's key from its stored traits; returns it (None: a trait is
    missing, the patient has no key)."""
    row = conn.execute(select(*_TRAITS).where(_p.id == patient_id)).one()
    key = trait_key(*row)
    conn.execute(delete(trait_keys).where(_k.patient_id == patient_id))
    if key is not None:
        conn.execute(insert(trait_keys).values(patient_id=patient_id, trait_key=key))
    return key


def homonyms(conn: Connection, patient_id: int, key: str) -> list[int]:
    """The other patients standing alone (not merged) whose key is ``key``."""
    query = (
        select(_k.patient_id)
        .join(patients, _p.id == _k.patient_id)
        .where(_k.trait_key == key, _k.patient_id != patient_id, _p.merged_into.is_(None))
        .order_by(_k.patient_id)
    )
    return [int(i) for i in conn.execute(query).scalars()]


def backfill(conn: Connection) -> int:
    """Give every patient without a key its key (migration 0008, bulk-loaded stores); returns
    how many keys were written. Reads and writes in chunks of ids, so memory stays flat."""
    written, after = 0, 0
    while True:
        rows = conn.execute(
            select(_p.id, *_TRAITS)
            .outerjoin(trait_keys, _k.patient_id == _p.id)
            .where(_p.id > after, _k.patient_id.is_(None))
            .order_by(_p.id)
            .limit(_BACKFILL_CHUNK)
        ).all()
        if not rows:
            return written
        after = rows[-1][0]
        keyed = list(_keyed(rows))
        if keyed:
            conn.execute(insert(trait_keys), keyed)
            written += len(keyed)


def _keyed(rows: Sequence[Any]) -> Iterator[dict[str, Any]]:
    for patient_id, *traits in rows:
        key = trait_key(*traits)
        if key is not None:
            yield {"patient_id": patient_id, "trait_key": key}
