"""The record-store side of A40 merges and their undo: the rows that follow a merged patient,
and the merge records (``store_merges``) that keep which rows moved, so that a merge can be
undone. The identity rules that decide a merge are :mod:`engine.pipeline.identify.merge`'s."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from engine.store.documents import documents, reimbursements, summary_entries
from engine.store.record_core import encounters, merges, observations, patient_identifiers

#: Tables whose rows follow a merged patient.
MOVED = {
    "identifiers": patient_identifiers,
    "encounters": encounters,
    "observations": observations,
    "documents": documents,
    "summary_entries": summary_entries,
    "reimbursements": reimbursements,
}


def move_rows(conn: Connection, absorbed_id: int, survivor_id: int) -> dict[str, Any]:
    """Move the absorbed patient's rows to the survivor; the ids moved, by table."""
    moved: dict[str, Any] = {}
    for name, table in MOVED.items():
        ids = list(
            conn.execute(select(table.c.id).where(table.c.patient_id == absorbed_id)).scalars()
        )
        if ids:
            conn.execute(update(table).where(table.c.id.in_(ids)).values(patient_id=survivor_id))
        moved[name] = ids
    return moved


def move_back(conn: Connection, moved: dict[str, Any], to: int) -> None:
    """Put the rows a merge moved (``moved``, as recorded) on patient ``to``."""
    for name, table in MOVED.items():
        ids = moved.get(name) or []
        if ids:
            conn.execute(update(table).where(table.c.id.in_(ids)).values(patient_id=to))


def not_on(conn: Connection, moved: dict[str, Any], patient_id: int) -> str | None:
    """The first table some of whose moved rows are no longer on ``patient_id``, else None."""
    for name, table in MOVED.items():
        ids = moved.get(name) or []
        if not ids:
            continue
        still = conn.execute(
            select(func.count())
            .select_from(table)
            .where(table.c.id.in_(ids), table.c.patient_id == patient_id)
        ).scalar_one()
        if still != len(ids):
            return name
    return None


def visits(conn: Connection, patient_id: int) -> set[tuple[str, str]]:
    """The patient's visits: (visit number, authority)."""
    e = encounters.c
    rows = conn.execute(select(e.visit_number, e.visit_authority).where(e.patient_id == patient_id))
    return {(r[0], r[1]) for r in rows}


def record(
    conn: Connection,
    survivor_id: int,
    absorbed_id: int,
    message_id: int,
    now: datetime,
    moved: dict[str, Any],
) -> int:
    """Keep the merge and the rows it moved; returns its id."""
    merge_id: int = conn.execute(
        insert(merges)
        .values(
            survivor_id=survivor_id,
            absorbed_id=absorbed_id,
            message_id=message_id,
            at=now,
            moved=json.dumps(moved),
        )
        .returning(merges.c.id)
    ).scalar_one()
    return merge_id


def find(conn: Connection, merge_id: int) -> Row[Any] | None:
    return conn.execute(select(merges).where(merges.c.id == merge_id)).first()


def mark_undone(conn: Connection, merge_id: int, now: datetime, actor: str, reason: str) -> None:
    conn.execute(
        update(merges)
        .where(merges.c.id == merge_id)
        .values(undone_at=now, undone_by=actor, undo_reason=reason)
    )
