"""The identity-review queue's rows (``store_identity_reviews``): a review opened for a message
whose identity needs a human, or a notice for the identity cell, and how it was resolved. The
rules that open and resolve reviews are :mod:`engine.pipeline.identify.review`'s."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exists, insert, select, update
from sqlalchemy.sql import ColumnElement

from engine.store.record_core import identity_reviews

_r = identity_reviews.c
OPEN, ATTACHED, REJECTED, DISMISSED = "open", "attached", "rejected", "dismissed"
#: A notice for the identity cell: not a conflict, nothing waits on it.
HOMONYM = "homonym"


def add(
    conn: Connection,
    message_id: int,
    channel: str,
    code: str,
    reason: str,
    candidates: list[int],
    now: datetime,
) -> None:
    """Open a review (or a notice, code :data:`HOMONYM`) of a message; returns nothing."""
    conn.execute(
        insert(identity_reviews).values(
            message_id=message_id,
            channel=channel,
            status=OPEN,
            created_at=now,
            code=code,
            reason=reason,
            candidates=json.dumps(candidates),
        )
    )


def reopen(
    conn: Connection, message_id: int, code: str, reason: str, candidates: list[int]
) -> bool:
    """Give the message's open review (a notice is not one) this code, reason and candidates;
    returns whether it had one."""
    done = conn.execute(
        update(identity_reviews)
        .where(_r.message_id == message_id, _r.status == OPEN, _r.code != HOMONYM)
        .values(code=code, reason=reason, candidates=json.dumps(candidates))
    ).rowcount
    return bool(done)


def resolve(
    conn: Connection,
    review_id: int,
    status: str,
    actor: str,
    reason: str,
    now: datetime,
    patient_id: int | None = None,
) -> None:
    """Close a review with ``status``, who, why and the patient attached to (None: none);
    returns nothing."""
    conn.execute(
        update(identity_reviews)
        .where(_r.id == review_id)
        .values(
            status=status,
            resolved_at=now,
            resolved_by=actor,
            resolution_reason=reason,
            patient_id=patient_id,
        )
    )


def attached_patient(conn: Connection, message_id: int) -> int | None:
    """The patient an operator last attached this message to, if any."""
    return conn.execute(
        select(_r.patient_id)
        .where(_r.message_id == message_id, _r.status == ATTACHED)
        .order_by(_r.id.desc())
        .limit(1)
    ).scalar()


def open_review_names(message_id: ColumnElement[int]) -> ColumnElement[bool]:
    """A condition for a query over journal messages: an open review, or an open notice,
    names the message whose id is ``message_id`` (a column of that query, correlated). A
    condition rather than a read, so that the journal's prune checks it in the same statement
    (and under the same row locks) as the rest of what makes a message due."""
    return exists().where(_r.message_id == message_id, _r.status == OPEN)


def reviews(conn: Connection, status: str | None = OPEN) -> list[dict[str, Any]]:
    """The reviews with this status (None: all), oldest first, candidates decoded."""
    query = select(identity_reviews).order_by(_r.id)
    if status:
        query = query.where(_r.status == status)
    return [_decoded(r._mapping) for r in conn.execute(query)]


def review(conn: Connection, review_id: int) -> dict[str, Any] | None:
    """One review, candidates decoded; None when there is no such review."""
    row = conn.execute(select(identity_reviews).where(_r.id == review_id)).first()
    return None if row is None else _decoded(row._mapping)


def _decoded(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["candidates"] = json.loads(out["candidates"] or "[]")
    return out
