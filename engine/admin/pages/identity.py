"""Identity reviews (the list, the side-by-side comparison, resolve) and held messages."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from engine.admin.deps import Context, ReadConn, context
from engine.admin.pages.common import Who, acting, done, page, refused, router, to_login
from engine.admin.roles import Principal
from engine.admin.services import identity
from engine.admin.services.errors import NotFound, ServiceError
from engine.pipeline.identify import review

REJECT = "reject"


@router.get("/reviews")
def reviews(request: Request, who: Who, conn: ReadConn, all: bool = False) -> Response:
    if who is None:
        return to_login()
    rows = identity.reviews(conn, None if all else review.OPEN)
    notice = request.query_params.get("notice", "")
    return page(request, who, "reviews.html", {"reviews": rows, "all": all, "notice": notice})


@router.get("/reviews/{review_id}")
def comparison(review_id: int, request: Request, who: Who, ctx: Context) -> Response:
    """The message's identity beside each candidate (traits: operators, audited)."""
    if who is None:
        return to_login()
    try:
        with ctx.db.connect() as conn:
            row = review.review(conn, review_id)
            compared = identity.comparison(conn, who, review_id)  # refuses, or audits
        if row is None:
            raise NotFound(f"no identity review {review_id}")
    except ServiceError as exc:
        return refused(request, who, exc)
    values = {"r": row, "cmp": compared, "reject": REJECT}
    return page(request, who, "review.html", values)


@router.post("/reviews/{review_id}/resolve")
async def resolve(review_id: int, request: Request) -> Response:
    who = await acting(request)
    if not isinstance(who, Principal):
        return who
    form = await request.form()
    choice = str(form.get("patient", ""))
    reason = str(form.get("reason", ""))
    return await run_in_threadpool(_resolve, request, who, review_id, choice, reason)


def _resolve(
    request: Request, who: Principal, review_id: int, choice: str, reason: str
) -> Response:
    ctx = context(request)
    try:
        if choice != REJECT and not choice.isdigit():
            raise ServiceError("choose the patient to attach the message to, or reject it")
        patient = None if choice == REJECT else int(choice)
        with ctx.db.connect() as conn:
            out = identity.resolve(conn, who, review_id, reason, patient, ctx.config.engine.work)
    except ServiceError as exc:
        return refused(request, who, exc)
    return done("/reviews", f"review {review_id}: {out['status']}")


@router.get("/held")
def held(request: Request, who: Who, conn: ReadConn, channel: str = "") -> Response:
    if who is None:
        return to_login()
    rows = identity.held(conn, channel or None)
    return page(request, who, "held.html", {"held": rows, "channel": channel})
