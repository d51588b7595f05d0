"""A patient's record as a professional reads it: identity, documents, last results.

Deleted documents are hidden from readers (kept for audit); superseded versions are listed
with their status, newest first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, or_, select

from engine.store import patients as identity_patients
from engine.store.documents import CURRENT, DELETED, documents, reimbursements, summary_entries
from engine.store.record_core import observations, patient_identifiers, patients

_IDENTITY = (
    "id",
    "ins",
    "ins_oid",
    "identity_status",
    "birth_name",
    "used_name",
    "first_given_name",
    "given_names",
    "birth_date",
    "sex",
    "birth_place",
    "address",
    "phone",
)
_DOCUMENT = (
    "document_id",
    "version",
    "status",
    "type_code",
    "type_label",
    "title",
    "effective_time",
    "author_name",
    "facility",
    "level",
    "confidentiality",
    "masked_ps",
    "invisible_patient",
)
_RESULT = ("observed_ts", "code", "code_text", "value", "unit", "reference_range", "abnormal_flags")


def patient_record(conn: Connection, ins: str, last_results: int = 20) -> dict[str, Any] | None:
    """The record of the patient holding ``ins`` (after merges), or None."""
    found = identity_patients.by_ins(conn, [ins])
    if not found:
        return None
    patient_id = next(iter(found))
    p = patients.c
    row = conn.execute(select(*(p[c] for c in _IDENTITY)).where(p.id == patient_id)).one()
    record: dict[str, Any] = dict(row._mapping)
    i = patient_identifiers.c
    record["identifiers"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(i.value, i.authority, i.authority_oid, i.type_code).where(
                i.patient_id == patient_id
            )
        )
    ]
    d = documents.c
    record["documents"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(*(d[c] for c in _DOCUMENT))
            .where(d.patient_id == patient_id, d.status != DELETED)
            .order_by(d.authored_at.desc().nulls_last(), d.id.desc())
        )
    ]
    record["summary"] = _extracted(conn, summary_entries, patient_id, "start")
    record["reimbursements"] = _extracted(conn, reimbursements, patient_id, "date")
    o = observations.c
    # Results of a superseded or deleted document are hidden with it.
    visible = or_(o.document_row.is_(None), d.status == CURRENT)
    record["results"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(*(o[c] for c in _RESULT))
            .outerjoin(documents, d.id == o.document_row)
            .where(o.patient_id == patient_id, visible)
            .order_by(o.observed_at.desc().nulls_last(), o.id.desc())
            .limit(last_results)
        )
    ]
    return record


def _extracted(
    conn: Connection, table: Any, patient_id: int, date_column: str
) -> list[dict[str, Any]]:
    """Rows extracted from the patient's current documents, newest first."""
    t, d = table.c, documents.c
    columns = [c for c in t if c.name not in ("id", "patient_id", "document_row")]
    rows = conn.execute(
        select(*columns, d.title.label("document_title"))
        .join(documents, d.id == t.document_row)
        .where(t.patient_id == patient_id, d.status == CURRENT)
        .order_by(t[date_column].desc(), t.id)
    )
    return [dict(r._mapping) for r in rows]
