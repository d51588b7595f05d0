"""Reads of one record for the access layer: the facts the rules need, and the rows (documents,
results, extracts, personal documents) that the rules then filter. Every query is by patient id
on an indexed column; no rule is applied here.

A record is read on every request, so the statements are compiled once and run on the DBAPI
cursor (``engine.fastsql``): SQLAlchemy's per-execution work and result processing cost more
than the queries for a record of 200 documents. Datetimes come back as aware UTC (``utc``),
flags as bools, as SQLAlchemy's types would give them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, case, cast, literal, null, select, union_all

from engine.fastsql import FastStatement
from engine.identity import patients as identity_patients
from engine.identity.patients import StoredPatient
from engine.record.model import DocumentFacts, RecordFacts, State
from engine.store import crypto
from engine.store.access_log import access_log
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
_DOCUMENT_TIMES = tuple(
    _DOCUMENT_NAMES.index(n) for n in ("authored_at", "stored_at", "revealed_at")
)
_DOCUMENT_FLAGS = tuple(
    _DOCUMENT_NAMES.index(n)
    for n in ("masked_ps", "invisible_patient", "invisible_legal_reps", "patient_masked")
)


def utc(value: Any) -> Any:
    """A datetime as the DBAPI cursor gives it (SQLite: SQLAlchemy's text; PostgreSQL: an aware
    datetime) as aware UTC, as ``UtcDateTime`` reads it; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def patient(conn: Connection, ins: str) -> StoredPatient | None:
    """The stored patient holding ``ins`` (after merges), or None."""
    found = identity_patients.by_ins(conn, [ins])
    return next(iter(found.values())) if found else None


def patient_id(conn: Connection, ins: str) -> int | None:
    """The stored patient holding ``ins`` (after merges), or None."""
    found = patient(conn, ins)
    return found.id if found is not None else None


def _pid() -> Any:
    return bindparam("pid")


def _facts_statement() -> FastStatement:
    s, p, e, enc, a = statuses.c, permissions.c, emergency_accesses.c, encounters.c, access_log.c
    no_time = cast(null(), UtcDateTime)
    last = (
        select(a.id)
        .where(a.patient_id == _pid(), a.role == "professional")
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
            ).where(s.patient_id == _pid()),
            select(literal("permission"), p.kind, p.rpps, literal(""), no_time).where(
                p.patient_id == _pid()
            ),
            select(literal("emergency"), e.rpps, literal(""), literal(""), e.ends_at).where(
                e.patient_id == _pid(), e.ends_at > bindparam("now", type_=UtcDateTime)
            ),
            select(literal("facility"), _d.facility, literal(""), literal(""), no_time)
            .where(_d.patient_id == _pid(), _d.status != DELETED)
            .distinct(),
            select(literal("facility"), enc.visit_authority, literal(""), literal(""), no_time)
            .where(enc.patient_id == _pid())
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
        .where(_d.patient_id == _pid(), _d.status != DELETED)
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


@lru_cache(maxsize=2)
def _results(by_code: bool) -> FastStatement:
    o = observations.c
    query = (
        select(*(o[c] for c in _RESULT))
        .where(o.patient_id == _pid())
        .order_by(o.observed_at.desc().nulls_last(), o.id.desc())
    )
    if by_code:
        query = query.where(o.code == bindparam("code"))
    return FastStatement(query)


def results(conn: Connection, pid: int, code: str = "") -> list[dict[str, Any]]:
    """Results newest first, with the document row they came from (None for HL7 v2 OBX).
    Plain text columns only, zipped into dicts: a record holds thousands of results."""
    params: dict[str, Any] = {"pid": pid, "code": code} if code else {"pid": pid}
    return [dict(zip(_RESULT, r, strict=True)) for r in _results(bool(code)).execute(conn, params)]


def _extract_columns(kind: str) -> list[Any]:
    t = (reimbursements if kind == "reimbursement" else summary_entries).c
    return [c for c in t if c.name not in ("id", "patient_id")]


_EXTRACT_NAMES = {k: tuple(c.name for c in _extract_columns(k)) for k in ("reimbursement", "")}
#: Where each kind's date is, in its columns (reimbursements: date; entries: start).
_DATE_AT = {
    "reimbursement": _EXTRACT_NAMES["reimbursement"].index("date"),
    "": _EXTRACT_NAMES[""].index("start"),
}


@lru_cache(maxsize=16)
def _extracts(kinds: tuple[str, ...]) -> FastStatement:
    """Reimbursement rows and summary entries of some kinds in one round trip: both tables have
    the document row and seven text columns, tagged with the kind asked for and the row id."""
    parts = []
    for kind in kinds:
        t = (reimbursements if kind == "reimbursement" else summary_entries).c
        part = select(literal(kind).label("asked"), t.id, *_extract_columns(kind)).where(
            t.patient_id == _pid()
        )
        parts.append(part if kind == "reimbursement" else part.where(t.kind == kind))
    return FastStatement(parts[0] if len(parts) == 1 else union_all(*parts))


def extracts(conn: Connection, pid: int, kinds: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """By kind asked: reimbursement rows (``"reimbursement"``) or summary entries of a kind
    (e.g. ``vaccination``), newest first (then by row), with their document row."""
    found: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in kinds}
    for row in _extracts(tuple(kinds)).execute(conn, {"pid": pid}):
        found[row[0]].append(row[1:])
    out = {}
    for kind, rows in found.items():
        names = _EXTRACT_NAMES["reimbursement" if kind == "reimbursement" else ""]
        date = _DATE_AT["reimbursement" if kind == "reimbursement" else ""] + 1
        rows.sort(key=lambda r: r[0])  # by id, then newest first (a stable sort)
        rows.sort(key=lambda r: r[date], reverse=True)
        out[kind] = [dict(zip(names, r[1:], strict=True)) for r in rows]
    return out


def extracted(conn: Connection, pid: int, kind: str) -> list[dict[str, Any]]:
    """Reimbursement rows (``kind="reimbursement"``) or summary entries of a kind (e.g.
    ``vaccination``), newest first, with their document row."""
    return extracts(conn, pid, (kind,))[kind]


_PERSONAL_NAMES = (
    "id",
    "kind",
    "title",
    "text",
    "code",
    "value",
    "unit",
    "measured_at",
    "media_type",
    "sha256",
    "added_by",
    "created_at",
)
_c = personal_documents.c
_PERSONAL = FastStatement(
    select(*(_c[n] for n in _PERSONAL_NAMES))
    .where(_c.patient_id == _pid(), _c.deleted_at.is_(None))
    .order_by(_c.created_at.desc(), _c.id.desc())
)


def personal(conn: Connection, pid: int) -> list[dict[str, Any]]:
    rows = []
    for r in _PERSONAL.execute(conn, {"pid": pid}):
        row = dict(zip(_PERSONAL_NAMES, r, strict=True))
        row["measured_at"] = utc(row["measured_at"])
        row["created_at"] = utc(row["created_at"])
        rows.append(row)
    return rows
