"""Retention (CSP L1111-18, DOMAIN.md §6): a record closed (or of a deceased patient) is kept
10 years after its closure, then purged: its documents, what was extracted from them (results,
entries, reimbursements), visits, personal documents, the patient's choices and the access
log. The patient's identity row stays (identity vigilance owns it); the status row stays,
marked ``purged_at`` in its reason, so a late document is still refused. Logs counts only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Connection, Table, delete, func, or_, select, update

from engine.store.access_log import access_log
from engine.store.documents import documents, reimbursements, summary_entries
from engine.store.record_core import encounters, observations
from engine.store.record_tables import (
    document_settings,
    emergency_accesses,
    permissions,
    personal_documents,
    rectifications,
    statuses,
)

log = structlog.get_logger("engine.retention")

YEARS = 10  # L1111-18: ten years after the closure (or the death)
_TABLES: tuple[Table, ...] = (
    documents,
    summary_entries,
    reimbursements,
    observations,
    encounters,
    personal_documents,
    access_log,
)
#: Deleted in this order (children before the documents they point at).
_PURGED: tuple[Table, ...] = (
    summary_entries,
    reimbursements,
    observations,
    encounters,
    personal_documents,
    permissions,
    emergency_accesses,
    rectifications,
    access_log,
)


def ended_before(now: datetime) -> datetime:
    """The cutoff: ``now`` ten calendar years back (a 29 February gives the 28th). A count of
    days would drift by the leap days in between."""
    try:
        return now.replace(year=now.year - YEARS)
    except ValueError:
        return now.replace(year=now.year - YEARS, day=28)


@dataclass(frozen=True, slots=True)
class Due:
    patients: list[int]
    rows: dict[str, int]


def due(conn: Connection, now: datetime, limit: int | None = None) -> Due:
    """The records whose retention ended (closed or died more than 10 years ago), and how many
    rows of each table the purge would delete; ``limit``: the first so many records only."""
    s = statuses.c
    cutoff = ended_before(now)
    ended = or_(s.closed_at < cutoff, s.deceased_at < cutoff)
    waiting = s.closed_reason.not_like("%purged")
    query = select(s.patient_id).where(s.state == "closed", ended, waiting)
    if limit is not None:
        query = query.order_by(s.patient_id).limit(limit)
    ids = list(conn.execute(query).scalars())
    rows = {
        t.name: int(
            conn.execute(
                select(func.count()).select_from(t).where(t.c.patient_id.in_(ids))
            ).scalar_one()
        )
        if ids
        else 0
        for t in _TABLES
    }
    return Due(ids, rows)


def purge(conn: Connection, now: datetime, limit: int | None = None) -> Due:
    """Delete what ``due`` counts, in the caller's transaction; returns what went."""
    found = due(conn, now, limit)
    ids = found.patients
    if not ids:
        return found
    d = documents.c
    rows = select(d.id).where(d.patient_id.in_(ids)).scalar_subquery()
    conn.execute(delete(document_settings).where(document_settings.c.document_row.in_(rows)))
    for table in _PURGED:
        conn.execute(delete(table).where(table.c.patient_id.in_(ids)))
    conn.execute(delete(documents).where(d.patient_id.in_(ids)))
    conn.execute(
        update(statuses)
        .where(statuses.c.patient_id.in_(ids))
        .values(closed_reason=statuses.c.closed_reason + " purged", updated_at=now)
    )
    log.info("retention_purged", records=len(ids), **found.rows)
    return found
