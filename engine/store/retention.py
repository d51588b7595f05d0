"""Retention (CSP L1111-18, DOMAIN.md §6): a record closed (or of a deceased patient) is kept
10 years after its closure, then purged. ``due`` says what would go, in counts only; the purge
itself deletes rows of tables the write path owns and is not wired yet (see the README)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Table, func, or_, select

from engine.store.access_log import access_log
from engine.store.documents import documents, reimbursements, summary_entries
from engine.store.models import encounters, observations
from engine.store.record_tables import personal_documents, statuses

RETENTION = timedelta(days=3653)  # 10 years
_TABLES: tuple[Table, ...] = (
    documents,
    summary_entries,
    reimbursements,
    observations,
    encounters,
    personal_documents,
    access_log,
)


@dataclass(frozen=True, slots=True)
class Due:
    patients: list[int]
    rows: dict[str, int]


def due(conn: Connection, now: datetime) -> Due:
    """The records whose retention ended (closed or died more than 10 years ago), and how many
    rows of each table the purge would delete."""
    s = statuses.c
    cutoff = now - RETENTION
    ended = or_(s.closed_at < cutoff, s.deceased_at < cutoff)
    ids = list(conn.execute(select(s.patient_id).where(s.state == "closed", ended)).scalars())
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
