from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from engine.admin import audit
from engine.admin.deps import Operator, ReadConn

router = APIRouter(tags=["audit"])


@router.get("/audit")
def audit_trail(
    conn: ReadConn,
    _: Operator,
    actor: str | None = None,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Who did or looked at what, newest first."""
    return audit.entries(conn, actor=actor, action=action, limit=limit, before_id=before_id)
