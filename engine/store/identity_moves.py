"""Moving record-store rows from one patient to another, for the identity cell's corrections
(undoing a merge, settling where a result belongs). A document moves with what was extracted
from it (summary entries, reimbursements, its results)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from engine.store.documents import documents, reimbursements, summary_entries
from engine.store.record_core import encounters, observations


@dataclass(frozen=True, slots=True)
class Filed:
    """A row filed on a patient: its id and the journal message that brought it."""

    row_id: int
    message_id: int | None


@dataclass(frozen=True, slots=True)
class FiledDocument(Filed):
    document_id: str = ""


@dataclass(frozen=True, slots=True)
class FiledSince:
    """What was filed on a patient after a moment: HL7 v2 results (CDA results go with their
    document), document versions, encounters."""

    observations: list[Filed]
    documents: list[FiledDocument]
    encounters: list[Filed]


def filed_since(conn: Connection, patient_id: int, since: datetime) -> FiledSince:
    o, d, e = observations.c, documents.c, encounters.c
    results = conn.execute(
        select(o.id, o.message_id)
        .where(o.patient_id == patient_id, o.created_at > since, o.document_row.is_(None))
        .order_by(o.id)
    )
    versions = conn.execute(
        select(d.id, d.message_id, d.document_id)
        .where(d.patient_id == patient_id, d.stored_at > since)
        .order_by(d.id)
    )
    visits = conn.execute(
        select(e.id, e.last_message_id)
        .where(e.patient_id == patient_id, e.created_at > since)
        .order_by(e.id)
    )
    return FiledSince(
        [Filed(r[0], r[1]) for r in results],
        [FiledDocument(r[0], r[1], r[2]) for r in versions],
        [Filed(r[0], r[1]) for r in visits],
    )


def stored_by(conn: Connection, document_id: str, at: datetime) -> bool:
    """Whether a version of document ``document_id`` (any patient's) was stored at or before
    ``at``."""
    d = documents.c
    older: int = conn.execute(
        select(func.count())
        .select_from(documents)
        .where(d.document_id == document_id, d.stored_at <= at)
    ).scalar_one()
    return older > 0


def document_ids(conn: Connection, rows: Collection[int]) -> set[str]:
    """The document ids (every version shares one) of these document rows."""
    if not rows:
        return set()
    d = documents.c
    return set(conn.execute(select(d.document_id).where(d.id.in_(list(rows)))).scalars())


def move_observations(conn: Connection, ids: Collection[int], to: int) -> None:
    if ids:
        o = observations.c
        conn.execute(update(observations).where(o.id.in_(list(ids))).values(patient_id=to))


def move_encounters(conn: Connection, ids: Collection[int], to: int) -> None:
    if ids:
        e = encounters.c
        conn.execute(update(encounters).where(e.id.in_(list(ids))).values(patient_id=to))


def move_documents(conn: Connection, rows: Collection[int], to: int) -> None:
    """Document versions and the rows extracted from them."""
    if not rows:
        return
    ids = list(rows)
    conn.execute(update(documents).where(documents.c.id.in_(ids)).values(patient_id=to))
    for table in (summary_entries, reimbursements, observations):
        conn.execute(update(table).where(table.c.document_row.in_(ids)).values(patient_id=to))


def message_rows(conn: Connection, message_id: int, patient_ids: Collection[int]) -> FiledSince:
    """What one journal message filed on these patients."""
    o, d, e = observations.c, documents.c, encounters.c
    among = list(patient_ids)
    results = conn.execute(
        select(o.id).where(
            o.message_id == message_id, o.patient_id.in_(among), o.document_row.is_(None)
        )
    )
    versions = conn.execute(
        select(d.id, d.document_id).where(d.message_id == message_id, d.patient_id.in_(among))
    )
    visits = conn.execute(
        select(e.id).where(e.last_message_id == message_id, e.patient_id.in_(among))
    )
    return FiledSince(
        [Filed(r[0], message_id) for r in results],
        [FiledDocument(r[0], message_id, r[1]) for r in versions],
        [Filed(r[0], message_id) for r in visits],
    )


def move_all(conn: Connection, rows: FiledSince, to: int) -> int:
    """Move these rows to patient ``to``; returns how many rows were named."""
    move_observations(conn, [r.row_id for r in rows.observations], to)
    move_documents(conn, [r.row_id for r in rows.documents], to)
    move_encounters(conn, [r.row_id for r in rows.encounters], to)
    return len(rows.observations) + len(rows.documents) + len(rows.encounters)
