"""Dead letters: the list with its filters, replay or discard of the chosen ones, and the same
in bulk by filter after a dry-run count. Every action needs a reason (the service refuses
without one) and lands in the audit trail.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from engine.admin.deps import Context, ReadConn, context
from engine.admin.pages.common import Who, acting, done, link, page, refused, router, to_login
from engine.admin.pages.messages import PAGE_SIZE, search_query
from engine.admin.roles import Principal
from engine.admin.services import dead_letters, messages
from engine.admin.services.dead_letters import Selection
from engine.admin.services.errors import ServiceError
from engine.journal.message_tables import State

#: The filters a bulk action can take (not the patient: a bulk action never reads payloads).
FIELDS = ("channel", "type", "control_id", "sender", "error_code", "since", "until")
ACTIONS = ("replay", "discard")


def _filters(request: Request, params: Any) -> dict[str, str]:
    return {k: str(params.get(k, "")).strip() for k in FIELDS}


def _selection(request: Request, given: dict[str, str]) -> Selection:
    zone = context(request).config.engine.timezone
    _, q = search_query(request, zone, given)
    return Selection(filter=q.to_filter())


@router.get("/dead-letters")
def listing(request: Request, who: Who, ctx: Context, conn: ReadConn) -> Response:
    if who is None:
        return to_login()
    given = _filters(request, request.query_params)
    values: dict[str, Any] = {
        "form": given,
        "channels": sorted(ctx.figures.get().channels),
        "notice": request.query_params.get("notice", ""),
    }
    try:
        zone = ctx.config.engine.timezone
        _, q = search_query(request, zone, {**given, "state": State.DEAD_LETTERED.value})
        found = messages.find_messages(
            conn, who, q.to_filter(), writer=ctx.db, limit=PAGE_SIZE, before_id=q.before_id
        )
    except ServiceError as exc:
        return page(request, who, "dead_letters.html", {**values, "error": exc.reason}, 400)
    after = found["next_before_id"]
    values["results"] = found["items"]
    values["older"] = link("/dead-letters", {**given, "before_id": after}) if after else None
    values["newest"] = link("/dead-letters", given) if q.before_id else None
    values["bulk"] = link("/dead-letters/bulk", given)
    return page(request, who, "dead_letters.html", values)


@router.get("/dead-letters/bulk")
def dry_run(request: Request, who: Who, conn: ReadConn) -> Response:
    """How many dead letters the filter takes now: the count the action must confirm."""
    if who is None:
        return to_login()
    given = _filters(request, request.query_params)
    try:
        counted = dead_letters.dry_run(conn, _selection(request, given))
    except ServiceError as exc:
        return refused(request, who, exc)
    values = {"form": given, "count": counted["count"], "ids": counted["ids"], "actions": ACTIONS}
    return page(request, who, "dead_letters_bulk.html", values)


@router.post("/dead-letters/bulk")
async def bulk(request: Request) -> Response:
    who = await acting(request)
    if not isinstance(who, Principal):
        return who
    form = await request.form()
    given = _filters(request, form)
    try:
        confirm = int(str(form.get("confirm_count", "")))
    except ValueError:
        confirm = -1
    return await run_in_threadpool(
        _act, request, who, _selection_or_none(request, given), form, confirm
    )


def _selection_or_none(request: Request, given: dict[str, str]) -> Selection | ServiceError:
    try:
        return _selection(request, given)
    except ServiceError as exc:
        return exc


@router.post("/dead-letters/selected")
async def selected(request: Request) -> Response:
    """Replay or discard the dead letters ticked in the list (or the one on its page)."""
    who = await acting(request)
    if not isinstance(who, Principal):
        return who
    form = await request.form()
    try:
        ids = tuple(int(str(v)) for v in form.getlist("ids"))
        sel: Selection | ServiceError = Selection(ids=ids)
    except (ValueError, ServiceError):
        sel = ServiceError("tick at least one dead letter")
    return await run_in_threadpool(_act, request, who, sel, form, None)


def _act(
    request: Request,
    who: Principal,
    sel: Selection | ServiceError,
    form: Any,
    confirm: int | None,
) -> Response:
    action = str(form.get("action", ""))
    reason = str(form.get("reason", ""))
    ctx = context(request)
    try:
        if isinstance(sel, ServiceError):
            raise sel
        with ctx.db.connect() as conn:
            if action == "replay":
                out = dead_letters.replay(conn, who, sel, reason, confirm, ctx.config.engine.work)
            elif action == "discard":
                out = dead_letters.discard(conn, who, sel, reason, confirm)
            else:
                raise ServiceError("choose replay or discard")
    except ServiceError as exc:
        return refused(request, who, exc)
    did = out["replayed" if action == "replay" else "discarded"]
    skipped = f", {len(out['skipped'])} skipped" if out["skipped"] else ""
    notice = f"{action}: {len(did)} done{skipped}"
    return done(_back(str(form.get("back", ""))), notice)


def _back(path: str) -> str:
    """Where the form came from, when it is one of the console's own pages."""
    local = path.startswith("/") and not path.startswith("//") and "\\" not in path
    return path if local and "?" not in path else "/dead-letters"
