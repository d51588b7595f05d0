"""Reads of one record for the access layer: the facts the rules need, and the rows (documents,
results, extracts, personal documents) that the rules then filter. Every query is by patient id
on an indexed column; no rule is applied here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, cast, literal, null, select, union_all

from engine.identity import patients as identity_patients
from engine.record.model import DocumentFacts, RecordFacts, State
from engine.store import crypto
from engine.store.documents import CURRENT, DELETED, documents, reimbursements, summary_entries
from engine.store.models import UtcDateTime, encounters, observations
from engine.store.record_tables import (
    document_settings,
    emergency_accesses,
    permissions,
    personal_documents,
    statuses,
)

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


def patient_id(conn: Connection, ins: str) -> int | None:
    """The stored patient holding ``ins`` (after merges), or None."""
    found = identity_patients.by_ins(conn, [ins])
    return next(iter(found)) if found else None


def facts(conn: Connection, pid: int, ins: str, now: datetime) -> RecordFacts:
    """The record's state and the patient's choices, in one round trip (a UNION ALL: this
    runs before every read)."""
    s, p, e, enc = statuses.c, permissions.c, emergency_accesses.c, encounters.c
    no_time = cast(null(), UtcDateTime)
    parts = union_all(
        select(
            literal("status").label("kind"),
            s.state.label("a"),
            s.medecin_traitant.label("b"),
            case((s.emergency_opposed, "Y"), else_="N").label("c"),
            no_time.label("at"),
        ).where(s.patient_id == pid),
        select(literal("permission"), p.kind, p.rpps, literal(""), no_time).where(
            p.patient_id == pid
        ),
        select(literal("emergency"), e.rpps, literal(""), literal(""), e.ends_at).where(
            e.patient_id == pid, e.ends_at > now
        ),
        select(literal("facility"), _d.facility, literal(""), literal(""), no_time)
        .where(_d.patient_id == pid, _d.status != DELETED)
        .distinct(),
        select(literal("facility"), enc.visit_authority, literal(""), literal(""), no_time)
        .where(enc.patient_id == pid)
        .distinct(),
    )
    state, opposed, mt = State.NONE, False, ""
    facilities: set[str] = set()
    authorised: set[str] = set()
    blocked: set[str] = set()
    emergency: dict[str, datetime] = {}
    for kind, a, b, c, at in conn.execute(parts):
        if kind == "status":
            state, mt, opposed = State(a), b, c == "Y"
        elif kind == "permission":
            (authorised if a == "authorised" else blocked).add(b)
        elif kind == "emergency":
            emergency[a] = max(at, emergency.get(a, at))
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
    )


def document_rows(
    conn: Connection, pid: int, current_only: bool = True, document_id: str = ""
) -> list[dict[str, Any]]:
    """The patient's documents newest first (never deleted ones), with the patient's settings."""
    query = (
        select(*DOCUMENT_COLUMNS)
        .outerjoin(document_settings, _m.document_row == _d.id)
        .where(_d.patient_id == pid, _d.status != DELETED)
        .order_by(_d.authored_at.desc().nulls_last(), _d.id.desc())
    )
    if current_only:
        query = query.where(_d.status == CURRENT)
    if document_id:
        query = query.where(_d.document_id == document_id)
    return [dict(zip(_DOCUMENT_NAMES, r, strict=True)) for r in conn.execute(query)]


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


_RESULT = (
    "document_row",
    "observed_ts",
    "code",
    "code_system",
    "code_text",
    "value",
    "unit",
    "reference_range",
    "abnormal_flags",
)


def results(conn: Connection, pid: int, code: str = "") -> list[dict[str, Any]]:
    """Results newest first, with the document row they came from (None for HL7 v2 OBX).
    Plain text columns only, zipped into dicts: a record holds thousands of results, and
    SQLAlchemy's row mappings and datetime processing cost more than the query."""
    o = observations.c
    query = (
        select(*(o[c] for c in _RESULT))
        .where(o.patient_id == pid)
        .order_by(o.observed_at.desc().nulls_last(), o.id.desc())
    )
    if code:
        query = query.where(o.code == code)
    return [dict(zip(_RESULT, r, strict=True)) for r in conn.execute(query)]


def extracted(conn: Connection, pid: int, kind: str) -> list[dict[str, Any]]:
    """Reimbursement rows (``kind="reimbursement"``) or summary entries of a kind (e.g.
    ``vaccination``), newest first, with their document row."""
    table = reimbursements if kind == "reimbursement" else summary_entries
    t = table.c
    date = t.date if kind == "reimbursement" else t.start
    columns = [c for c in t if c.name not in ("id", "patient_id")]
    query = select(*columns).where(t.patient_id == pid).order_by(date.desc(), t.id)
    if kind != "reimbursement":
        query = query.where(t.kind == kind)
    return [dict(r._mapping) for r in conn.execute(query)]


def personal(conn: Connection, pid: int) -> list[dict[str, Any]]:
    c = personal_documents.c
    query = (
        select(
            c.id,
            c.kind,
            c.title,
            c.text,
            c.code,
            c.value,
            c.unit,
            c.measured_at,
            c.media_type,
            c.sha256,
            c.added_by,
            c.created_at,
        )
        .where(c.patient_id == pid, c.deleted_at.is_(None))
        .order_by(c.created_at.desc(), c.id.desc())
    )
    return [dict(r._mapping) for r in conn.execute(query)]
