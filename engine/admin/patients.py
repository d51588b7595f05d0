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

from sqlalchemy import Connection

from engine.journal.search import PatientKeys
from engine.store.patients import held_identifiers, ids_with_ins, ids_with_local_id, ins_key

_INS = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}$", re.IGNORECASE)


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
        return ids_with_ins(conn, term.upper())
    return ids_with_local_id(conn, *_local(term, facility))


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
    held = held_identifiers(conn, ids)
    keys = _unique(*(f"{value}^{a}" for value, *forms in held.local for a in forms if a))
    holds = [f"local:{k}" for k in keys] + [ins_key(v) for v in held.ins]
    return keys, _unique(*holds)


def _unique(*values: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
