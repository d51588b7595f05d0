"""The alerts' history, newest first (every role: alerts carry no patient data)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from engine.admin.deps import ReadConn
from engine.admin.pages.common import Who, page, router, to_login
from engine.alerts.history import history

PAGE_SIZE = 200


@router.get("/alerts")
def alerts_page(request: Request, who: Who, conn: ReadConn, open_only: bool = False) -> Response:
    if who is None:
        return to_login()
    rows = history(conn, limit=PAGE_SIZE, open_only=open_only)
    return page(request, who, "alerts.html", {"alerts": rows, "open_only": open_only})
