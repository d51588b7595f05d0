"""The message browser (filters, pages newest first) and a message's detail."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from engine.admin.api.message_routes import SearchQuery
from engine.admin.deps import Context, ReadConn
from engine.admin.pages.common import Who, link, page, refused, router, to_login
from engine.admin.pages.payloads import payload_forms
from engine.admin.services import messages
from engine.admin.services.errors import ServiceError
from engine.journal.message_tables import State
from engine.localtime import parse_since

#: Query parameters the browser understands (the search form's fields).
FIELDS = (
    "channel",
    "state",
    "type",
    "control_id",
    "sender",
    "error_code",
    "since",
    "until",
    "patient",
    "facility",
)
PAGE_SIZE = 50


def search_query(
    request: Request, zone: str, given: dict[str, str] | None = None
) -> tuple[dict[str, str], SearchQuery]:
    """The form's values (``given``, else the query string's), and as a search
    (``since``/``until``: ``2h``, ``1d`` or a local date and time). Raises ServiceError for a
    value that does not parse."""
    if given is None:
        given = {k: request.query_params.get(k, "").strip() for k in FIELDS}
    wanted: dict[str, Any] = {k: v for k, v in given.items() if v}
    try:
        for key in ("since", "until"):
            if key in wanted:
                wanted[key] = parse_since(wanted[key], zone)
        before = request.query_params.get("before_id", "")
        if before:
            wanted["before_id"] = before
        return given, SearchQuery.model_validate({**wanted, "limit": PAGE_SIZE})
    except ValueError as exc:  # ValidationError is one
        raise ServiceError(_first_error(exc)) from exc


def _first_error(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)


@router.get("/messages")
def browse(request: Request, who: Who, ctx: Context, conn: ReadConn) -> Response:
    if who is None:
        return to_login()
    values: dict[str, Any] = {
        "channels": sorted(ctx.figures.get().channels),
        "states": [s.value for s in State],
        "results": None,
    }
    try:
        given, q = search_query(request, ctx.config.engine.timezone)
        values["form"] = given
        found = messages.find_messages(
            conn,
            who,
            q.to_filter(),
            writer=ctx.db,
            patient=q.patient,
            facility=q.facility,
            limit=q.limit,
            before_id=q.before_id,
        )
    except ServiceError as exc:
        values.setdefault("form", {k: request.query_params.get(k, "") for k in FIELDS})
        return page(request, who, "messages.html", {**values, "error": exc.reason}, exc.status)
    after = found["next_before_id"]
    values["results"] = found["items"]
    values["older"] = link("/messages", {**given, "before_id": after}) if after else None
    values["newest"] = link("/messages", given) if q.before_id else None
    return page(request, who, "messages.html", values)


@router.get("/messages/{message_id}")
def detail(message_id: int, request: Request, who: Who, ctx: Context, conn: ReadConn) -> Response:
    """Metadata, history and ACK for everyone; the payloads (raw and transformed) for
    operators and admins, each view audited."""
    if who is None:
        return to_login()
    try:
        message = messages.message_detail(conn, who, message_id)
        forms = None
        if who.sees_payloads:
            with ctx.db.connect() as audited:
                forms = payload_forms(audited, conn, who, message_id)
    except ServiceError as exc:
        return refused(request, who, exc)
    notice = request.query_params.get("notice", "")
    return page(request, who, "message.html", {"m": message, "forms": forms, "notice": notice})
