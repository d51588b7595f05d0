"""The alerts' history (issue 12: each alert fires once, resolves once, and has a history)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from engine.admin.deps import ReadConn, Viewer
from engine.alerts.history import history

router = APIRouter(tags=["alerts"])


@router.get("/alerts")
def alerts(
    conn: ReadConn,
    _: Viewer,
    open_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Alerts fired (and resolved), newest first: rule, channel, times, summary, resolution."""
    return history(conn, limit=limit, open_only=open_only)
