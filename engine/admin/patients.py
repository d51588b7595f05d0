"""A patient as operators write it, turned into what the journal searches.

Accepted forms: an INS (15 characters, ``2A``/``2B`` allowed), a local id in CX form
(``000003^^^CHU-X``, authority as CX-4.1 or its OID in CX-4.2), or a plain local id with an
optional facility (``000003`` + ``CHU-X``). A patient the store knows contributes every one of
its identifiers (and those of the patients merged into it), so a search by INS finds the
messages that carried only a local id; messages held for a patient the store does not know yet
are found through their hold keys.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, or_, select

from engine.journal.search import PatientKeys
from engine.store.patients import ins_key
from engine.store.record_core import merges, patient_identifiers, patients

_INS = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}$", re.IGNORECASE)
_ids = patient_identifiers.c


def patient_keys(conn: Connection, term: str, facility: str = "") -> PatientKeys:
    term = term.strip()
    found = matching_patients(conn, term, facility)
    keys, holds = _store_keys(conn, found)
    if _INS.match(term):
        return PatientKeys(keys=keys, hold_keys=_unique(ins_key(term.upper()), *holds))
    value, authority = _local(term, facility)
    if authority:
        own = f"{value}^{authority}"
        return PatientKeys(keys=_unique(own, *keys), hold_keys=_unique(f"local:{own}", *holds))
    return PatientKeys(keys=keys, prefixes=(f"{value}^",), hold_keys=holds)


def matching_patients(conn: Connection, term: str, facility: str = "") -> list[int]:
    """The stored patients (ids, merges not followed) that an operator's term names."""
    term = term.strip()
    if _INS.match(term):
        # "ins != ''" lets SQLite use the partial unique index on the INS.
        query = select(patients.c.id).where(patients.c.ins == term.upper(), patients.c.ins != "")
        return list(conn.execute(query).scalars())
    value, authority = _local(term, facility)
    query = select(_ids.patient_id).where(_ids.value == value)
    if authority:
        query = query.where(or_(_ids.authority == authority, _ids.authority_oid == authority))
    return list(dict.fromkeys(conn.execute(query).scalars()))


def _local(term: str, facility: str) -> tuple[str, str]:
    """``(value, authority)`` of ``000003^^^CHU-X`` (CX-4.1, else CX-4.2) or ``000003``."""
    parts = term.split("^")
    value = parts[0]
    authority = facility.strip()
    if len(parts) > 3 and not authority:
        sub = parts[3].split("&")
        authority = sub[0] or (sub[1] if len(sub) > 1 else "")
    return value, authority


def _store_keys(conn: Connection, ids: list[int]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Journal keys and hold keys of these patients and of those merged into them."""
    if not ids:
        return (), ()
    merged = conn.execute(
        select(merges.c.absorbed_id).where(
            merges.c.survivor_id.in_(ids), merges.c.undone_at.is_(None)
        )
    ).scalars()
    every = [*ids, *merged]
    keys: list[str] = []
    for value, authority, oid in conn.execute(
        select(_ids.value, _ids.authority, _ids.authority_oid).where(_ids.patient_id.in_(every))
    ):
        keys += [f"{value}^{a}" for a in (authority, oid) if a]
    ins = conn.execute(
        select(patients.c.ins).where(patients.c.id.in_(every), patients.c.ins != "")
    ).scalars()
    keys = list(dict.fromkeys(keys))
    holds = [f"local:{k}" for k in keys] + [ins_key(v) for v in ins]
    return tuple(keys), _unique(*holds)


def _unique(*values: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
