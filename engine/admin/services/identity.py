"""Identity reviews and held messages, with their age; resolving a review. The side-by-side
comparison shows patient traits: operator and above, audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from engine.admin import audit, record_views
from engine.admin.roles import Principal, Role
from engine.admin.services.errors import Forbidden, NotFound, ServiceError, require_reason
from engine.admin.times import aware
from engine.channels.config import WorkSettings
from engine.distributed.notify import hand_to_workers
from engine.journal.message_tables import State, messages
from engine.pipeline.identify import compare, review

_m = messages.c


def reviews(conn: Connection, status: str | None = review.OPEN) -> list[dict[str, Any]]:
    """Reviews oldest first, with their age (ids and codes only: no traits)."""
    now = datetime.now(UTC)
    out = []
    for r in review.reviews(conn, status):
        created = aware(r["created_at"])
        out.append(
            {
                "id": r["id"],
                "message_id": r["message_id"],
                "channel": r["channel"],
                "code": r["code"],
                "status": r["status"],
                "reason": r["reason"],
                "candidates": r["candidates"],
                "created_at": created,
                "age_seconds": round((now - created).total_seconds(), 1),
            }
        )
    return out


def comparison(conn: Connection, who: Principal, review_id: int) -> dict[str, Any]:
    """The message's identity beside each candidate patient, and the differing rows."""
    if not who.sees_payloads:
        raise Forbidden("patient traits are shown to operators and admins only")
    row = review.review(conn, review_id)
    if row is None:
        raise NotFound(f"no identity review {review_id}")
    audit.record(conn, who, "view_traits", target="review", ids=[review_id])
    shown = record_views.patients_ins(conn, row["candidates"])
    shown += record_views.message_patients(conn, row["message_id"])
    record_views.log_views(  # the traits of each patient shown: in their record's access log
        conn,
        who,
        shown,
        record_views.COMPARE_IDENTITY,
        target=f"review:{review_id}",
        reason="admin: identity review",
    )
    conn.commit()
    identity = compare.message_identity(conn, row["message_id"])
    columns = [compare.message_column(identity)] if identity else []
    columns += [c for p in row["candidates"] if (c := compare.patient_column(conn, p))]
    differ = set().union(*(compare.differing(columns[0], c) for c in columns[1:]))
    return {
        "review_id": review_id,
        "rows": list(compare.ROWS),
        "columns": [{"title": c.title, "values": c.values} for c in columns],
        "differing": sorted(differ),
    }


def held(conn: Connection, channel: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Messages held for their patient (902), oldest first, with their age."""
    now = datetime.now(UTC)
    query = select(
        _m.id, _m.channel, _m.received_at, _m.message_type, _m.trigger, _m.control_id
    ).where(_m.state == State.HELD)
    if channel:
        query = query.where(_m.channel == channel)
    rows = []
    for r in conn.execute(query.order_by(_m.id).limit(limit)):
        item = dict(r._mapping)
        item["received_at"] = aware(item["received_at"])
        item["age_seconds"] = round((now - item["received_at"]).total_seconds(), 1)
        rows.append(item)
    return rows


def resolve(
    conn: Connection,
    who: Principal,
    review_id: int,
    reason: str,
    patient_id: int | None = None,
    work: WorkSettings | None = None,
) -> dict[str, Any]:
    """Attach the message to ``patient_id`` (it is replayed), or reject it (None)."""
    if not who.role.allows(Role.OPERATOR):
        raise Forbidden("resolving a review needs the operator role")
    reason = require_reason(reason)
    now = datetime.now(UTC)
    try:
        if patient_id is not None:
            done = review.attach(conn, review_id, patient_id, who.actor, reason, now)
        else:
            done = review.reject(conn, review_id, who.actor, reason, now)
    except LookupError as exc:
        conn.rollback()
        raise NotFound(str(exc)) from exc
    except ValueError as exc:
        conn.rollback()
        raise ServiceError(str(exc)) from exc
    audit.record(
        conn,
        who,
        "resolve",
        target="review",
        ids=[review_id],
        reason=reason,
        detail={"message_id": done.message_id, "status": done.status, "patient_id": patient_id},
    )
    conn.commit()
    if done.replayed and work is not None:
        hand_to_workers(work, conn, [done.message_id])
    return {
        "review_id": review_id,
        "message_id": done.message_id,
        "status": done.status,
        "replayed": done.replayed,
        "moved": done.moved,
    }
