"""The audit trail: every operator action and every view of a payload or of patient traits.

Append-only: rows are inserted, never changed (the database refuses UPDATE and DELETE, see
migration 0010). A row says who, what, when, why and which ids; never the data seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from engine.admin.roles import Principal
from engine.admin.tables import audit

_a = audit.c


def record(
    conn: Connection,
    who: Principal | str,
    action: str,
    *,
    target: str = "",
    ids: Iterable[int | str] = (),
    reason: str = "",
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one row in the caller's transaction (the action and its trace commit together)."""
    conn.execute(
        insert(audit).values(
            at=datetime.now(UTC),
            actor=who.actor if isinstance(who, Principal) else who,
            action=action,
            target=target,
            ids=json.dumps(list(ids)),
            reason=reason,
            detail=json.dumps(dict(detail), sort_keys=True) if detail else "",
        )
    )


def entries(
    conn: Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first, one page."""
    query = select(audit).order_by(_a.id.desc()).limit(limit)
    if actor:
        query = query.where(_a.actor == actor)
    if action:
        query = query.where(_a.action == action)
    if before_id is not None:
        query = query.where(_a.id < before_id)
    return [_decoded(dict(r._mapping)) for r in conn.execute(query)]


def _decoded(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["ids"] = json.loads(out["ids"]) if out["ids"] else []
    out["detail"] = json.loads(out["detail"]) if out["detail"] else {}
    return out
