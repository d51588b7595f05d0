"""The audit trail, newest first, by actor and action (operators and admins, as the API)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from engine.admin import audit
from engine.admin.deps import ReadConn
from engine.admin.pages.common import Who, link, page, refused, router, to_login
from engine.admin.roles import Role
from engine.admin.services.errors import Forbidden

PAGE_SIZE = 100


@router.get("/audit")
def audit_log(
    request: Request,
    who: Who,
    conn: ReadConn,
    actor: str = "",
    action: str = "",
    before_id: int | None = None,
) -> Response:
    if who is None:
        return to_login()
    if not who.role.allows(Role.OPERATOR):
        return refused(request, who, Forbidden("the audit trail is shown to operators and admins"))
    rows = audit.entries(
        conn, actor=actor or None, action=action or None, limit=PAGE_SIZE + 1, before_id=before_id
    )
    form = {"actor": actor, "action": action}
    older = None
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        older = link("/audit", {**form, "before_id": rows[-1]["id"]})
    newest = link("/audit", form) if before_id is not None else None
    values = {"entries": rows, "form": form, "older": older, "newest": newest}
    return page(request, who, "audit.html", values)
