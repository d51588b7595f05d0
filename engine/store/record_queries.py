"""Reads of one record for the access layer: the facts the rules need, and the rows (documents
here; results, extracts and personal documents in ``engine.store.record_rows``, re-exported)
that the rules then filter. Every query is by patient id on an indexed column; no rule is
applied here.

A record is read on every request, so the statements are compiled once and run on the DBAPI
cursor (``engine.fastsql``): SQLAlchemy's per-execution work and result processing cost more
than the queries for a record of 200 documents. Datetimes come back as aware UTC (``utc``),
flags as bools, as SQLAlchemy's types would give them.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, case, cast, literal, null, select, union_all

from engine.fastsql import FastStatement
from engine.record.model import DocumentFacts, RecordFacts, State
from engine.store import crypto
from engine.store import patients as identity_patients
from engine.store.access_log import access_log
from engine.store.documents import CURRENT, DELETED, documents
from engine.store.patients import StoredPatient
from engine.store.record_core import UtcDateTime, encounters
from engine.store.record_rows import extracted as extracted
from engine.store.record_rows import extracts as extracts
from engine.store.record_rows import personal as personal
from engine.store.record_rows import pid_param, utc
from engine.store.record_rows import results as results
from engine.store.record_tables import document_settings, emergency_accesses, permissions, statuses

_d, _m = documents.c, document_settings.c
DOCUMENT_COLUMNS = (
    _d.id,
    _d.document_id,
    _d.version,
    _d.status,
    _d.type_code,
    _d.type_label,
    _d.title,
    _d.effective_time,
    _d.authored_at,
    _d.author_id,
    _d.author_name,
    _d.facility,
    _d.level,
    _d.confidentiality,
    _d.masked_ps,
    _d.invisible_patient,
    _d.invisible_legal_reps,
    _d.sha256,
    _d.stored_at,
    _m.patient_masked,
    _m.revealed_at,
)

_DOCUMENT_NAMES = tuple(c.name for c in DOCUMENT_COLUMNS)
_DOCUMENT_TIMES = tuple(
    _DOCUMENT_NAMES.index(n) for n in ("authored_at", "stored_at", "revealed_at")
)
_DOCUMENT_FLAGS = tuple(
    _DOCUMENT_NAMES.index(n)
    for n in ("masked_ps", "invisible_patient", "invisible_legal_reps", "patient_masked")
)


def patient(conn: Connection, ins: str) -> StoredPatient | None:
    """The stored patient holding ``ins`` (after merges), or None."""
    found = identity_patients.by_ins(conn, [ins])
    return next(iter(found.values())) if found else None


def patient_id(conn: Connection, ins: str) -> int | None:
    """The stored patient holding ``ins`` (after merges), or None."""
    found = patient(conn, ins)
    return found.id if found is not None else None


def _facts_statement() -> FastStatement:
    s, p, e, enc, a = statuses.c, permissions.c, emergency_accesses.c, encounters.c, access_log.c
    no_time = cast(null(), UtcDateTime)
    last = (
        select(a.id)
        .where(a.patient_id == pid_param(), a.role == "professional")
        .order_by(a.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return FastStatement(
        union_all(
            select(
                literal("status").label("kind"),
                s.state.label("a"),
                s.medecin_traitant.label("b"),
                case((s.emergency_opposed, "Y"), else_="N").label("c"),
                no_time.label("at"),
            ).where(s.patient_id == pid_param()),
            select(literal("permission"), p.kind, p.rpps, literal(""), no_time).where(
                p.patient_id == pid_param()
            ),
            select(literal("emergency"), e.rpps, literal(""), literal(""), e.ends_at).where(
                e.patient_id == pid_param(), e.ends_at > bindparam("now", type_=UtcDateTime)
            ),
            select(literal("facility"), _d.facility, literal(""), literal(""), no_time)
            .where(_d.patient_id == pid_param(), _d.status != DELETED)
            .distinct(),
            select(literal("facility"), enc.visit_authority, literal(""), literal(""), no_time)
            .where(enc.patient_id == pid_param())
            .distinct(),
            select(
                literal("last_access"),
                a.actor,
                literal(""),
                case((a.emergency, "Y"), else_="N"),
                a.at,
            ).where(a.id == last),
        )
    )


_FACTS = _facts_statement()


def facts(conn: Connection, pid: int, ins: str, now: datetime) -> RecordFacts:
    """The record's state, the patient's choices and the last professional access, in one
    round trip (a UNION ALL: this runs before every read)."""
    state, opposed, mt = State.NONE, False, ""
    facilities: set[str] = set()
    authorised: set[str] = set()
    blocked: set[str] = set()
    emergency: dict[str, datetime] = {}
    last: dict[str, Any] | None = None
    for kind, a, b, c, at in _FACTS.execute(conn, {"pid": pid, "now": now}):
        if kind == "status":
            state, mt, opposed = State(a), b, c == "Y"
        elif kind == "permission":
            (authorised if a == "authorised" else blocked).add(b)
        elif kind == "emergency":
            ends = utc(at)
            emergency[a] = max(ends, emergency.get(a, ends))
        elif kind == "last_access":
            last = {"at": utc(at), "actor": a, "emergency": c == "Y"}
        elif a:
            facilities.add(a)
    return RecordFacts(
        patient_id=pid,
        ins=ins,
        state=state,
        emergency_opposed=opposed,
        medecin_traitant=mt,
        care_facilities=frozenset(facilities),
        authorised=frozenset(authorised),
        blocked=frozenset(blocked),
        emergency=emergency,
        last_professional_access=last,
    )


@lru_cache(maxsize=8)
def _documents(current_only: bool, one: bool, lean: bool) -> FastStatement:
    columns: list[Any] = list(DOCUMENT_COLUMNS)
    if lean:
        # On SQLite stored_at lies after the CDA in the row: reading it walks the CDA's
        # overflow pages. Only INVISIBLE_PATIENT's rule needs it in a list.
        at = _DOCUMENT_NAMES.index("stored_at")
        columns[at] = case((_d.invisible_patient, _d.stored_at)).label("stored_at")
    query = (
        select(*columns)
        .outerjoin(document_settings, _m.document_row == _d.id)
        .where(_d.patient_id == pid_param(), _d.status != DELETED)
        .order_by(_d.authored_at.desc().nulls_last(), _d.id.desc())
    )
    if current_only:
        query = query.where(_d.status == CURRENT)
    if one:
        query = query.where(_d.document_id == bindparam("document_id"))
    return FastStatement(query)


def document_rows(
    conn: Connection,
    pid: int,
    current_only: bool = True,
    document_id: str = "",
    lean: bool = False,
) -> list[dict[str, Any]]:
    """The patient's documents newest first (never deleted ones), with the patient's settings.
    ``lean``: ``stored_at`` only where INVISIBLE_PATIENT is set (None elsewhere)."""
    statement = _documents(current_only, bool(document_id), lean)
    params: dict[str, Any] = {"pid": pid}
    if document_id:
        params["document_id"] = document_id
    rows = []
    for r in statement.execute(conn, params):
        values = list(r)
        for i in _DOCUMENT_TIMES:
            values[i] = utc(values[i])
        for i in _DOCUMENT_FLAGS:
            values[i] = bool(values[i])
        rows.append(dict(zip(_DOCUMENT_NAMES, values, strict=True)))
    return rows


def document_facts(row: dict[str, Any]) -> DocumentFacts:
    return DocumentFacts(
        author_id=row["author_id"],
        masked_ps=bool(row["masked_ps"]),
        invisible_patient=bool(row["invisible_patient"]),
        invisible_legal_reps=bool(row["invisible_legal_reps"]),
        stored_at=row["stored_at"],
        patient_masked=bool(row["patient_masked"]),
        revealed_at=row["revealed_at"],
    )


def content(conn: Connection, row_id: int) -> bytes:
    """The document's CDA, opened (``engine.store.crypto``)."""
    return crypto.stored_document(conn, row_id)
