"""The rows of a record's sections for the access layer (``engine.store.record_queries`` has
the facts and the documents): results, extracts of level-3 documents, the personal space.
Compiled once and run on the DBAPI cursor (``engine.fastsql``), as the record's other reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, literal, select, union_all

from engine.fastsql import FastStatement
from engine.store.documents import reimbursements, summary_entries
from engine.store.record_core import observations
from engine.store.record_tables import personal_documents


def utc(value: Any) -> Any:
    """A datetime as the DBAPI cursor gives it (SQLite: SQLAlchemy's text; PostgreSQL: an aware
    datetime) as aware UTC, as ``UtcDateTime`` reads it; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def pid_param() -> Any:
    """The patient id's bind (``pid``) of the record's statements."""
    return bindparam("pid")


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
        .where(o.patient_id == pid_param())
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
            t.patient_id == pid_param()
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
    .where(_c.patient_id == pid_param(), _c.deleted_at.is_(None))
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
