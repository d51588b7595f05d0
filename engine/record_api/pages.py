"""Server-rendered pages of the record (Jinja2, vendored CSS, no script): a professional's view
(sections newest first, lab table with trend charts, a document's narrative as safe HTML, the
emergency-access form) and the patient's (the same, plus the access log, authorisations,
masking controls and a personal document form). Pages sign in with the same tokens as the
API, kept in an HttpOnly, SameSite=Strict cookie (which is what keeps other sites from
posting these forms)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection

from engine.record.model import Actor
from engine.record_api.auth import SESSION_COOKIE, identify
from engine.record_api.charts import trend_svg
from engine.record_api.narrative import narrative_html
from engine.store import access_log, record_access, record_changes
from engine.store.record_access import Refused

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["trend_svg"] = trend_svg
LABELS = {
    "summary": "Synthesis",
    "treatments": "Treatments and care",
    "reports": "Reports",
    "imaging": "Imaging",
    "biology": "Laboratory results",
    "certificates": "Certificates",
}
templates.env.globals["LABELS"] = LABELS


class SignIn(Exception):
    """No valid session: back to the sign-in page."""


def page_actor(request: Request) -> Actor:
    actor = identify(request, request.app.state.db)
    if actor is None:
        raise SignIn()
    return actor


PageActor = Annotated[Actor, Depends(page_actor)]


@contextmanager
def _conn(request: Request) -> Iterator[Connection]:
    with request.app.state.db.connect() as conn:
        try:
            yield conn
        except Refused:
            conn.commit()  # the refused attempt's log line stays
            raise
        conn.commit()


def _now() -> datetime:
    return datetime.now(UTC)


def refused_page(request: Request, exc: Refused) -> HTMLResponse:
    actor = identify(request, request.app.state.db)
    ins = request.path_params.get("ins", "")
    context = {"actor": actor, "ins": ins, "reason": exc.reason}
    return templates.TemplateResponse(request, "refused.html", context, status_code=exc.status)


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    actor = identify(request, request.app.state.db)
    if actor is None:
        return templates.TemplateResponse(request, "login.html", {"actor": None})
    if actor.patient_side:
        return RedirectResponse(f"/records/{actor.ident}", status_code=303)
    return templates.TemplateResponse(request, "home.html", {"actor": actor})


@router.post("/login")
def login(request: Request, token: Annotated[str, Form()]) -> Response:
    answer = RedirectResponse("/", status_code=303)
    answer.set_cookie(SESSION_COOKIE, token.strip(), httponly=True, samesite="strict")
    return answer


@router.post("/logout")
def logout() -> Response:
    answer = RedirectResponse("/", status_code=303)
    answer.delete_cookie(SESSION_COOKIE)
    return answer


@router.get("/records", response_class=HTMLResponse)
def find(ins: str, actor: PageActor) -> Response:
    return RedirectResponse(f"/records/{ins.strip().upper()}", status_code=303)


@router.get("/records/{ins}", response_class=HTMLResponse)
def record_page(ins: str, request: Request, actor: PageActor) -> Response:
    with _conn(request) as conn:
        record = record_access.record_view(conn, actor, ins, _now())
        results = record_access.results_view(conn, actor, ins, _now())
        patient: dict[str, Any] = {}
        if actor.patient_side:
            opened = record_changes.managed(conn, actor, ins, _now())
            patient = {
                "log": access_log.entries(conn, opened.facts.patient_id, limit=200),
                "permissions": record_changes.permissions_of(conn, actor, ins, _now()),
                "facts": opened.facts,
            }
    context = {"actor": actor, "ins": ins, "record": record, "results": results, **patient}
    return templates.TemplateResponse(request, "record.html", context)


@router.get("/records/{ins}/documents/{document_id}", response_class=HTMLResponse)
def document_page(ins: str, document_id: str, request: Request, actor: PageActor) -> Response:
    with _conn(request) as conn:
        doc, content = record_access.document_view(conn, actor, ins, document_id, _now())
    context = {"actor": actor, "ins": ins, "doc": doc, "body": narrative_html(content)}
    return templates.TemplateResponse(request, "document.html", context)


@router.post("/records/{ins}/emergency")
def emergency(
    ins: str, request: Request, actor: PageActor, reason: Annotated[str, Form()]
) -> Response:
    lasts = timedelta(minutes=request.app.state.settings.emergency_minutes)
    with _conn(request) as conn:
        record_changes.break_glass(conn, actor, ins, reason, _now(), lasts)
    return RedirectResponse(f"/records/{ins}", status_code=303)


@router.post("/records/{ins}/mask/{document_id}")
def mask(
    ins: str, document_id: str, request: Request, actor: PageActor, masked: Annotated[bool, Form()]
) -> Response:
    with _conn(request) as conn:
        record_changes.mask(conn, actor, ins, document_id, masked, _now())
    return RedirectResponse(f"/records/{ins}", status_code=303)


@router.post("/records/{ins}/permissions")
def permission(
    ins: str,
    request: Request,
    actor: PageActor,
    rpps: Annotated[str, Form()],
    kind: Annotated[str, Form()],
) -> Response:
    if kind not in ("authorised", "blocked", ""):
        raise Refused("bad_request")
    with _conn(request) as conn:
        record_changes.permit(conn, actor, ins, rpps, kind, _now())
    return RedirectResponse(f"/records/{ins}", status_code=303)


@router.post("/records/{ins}/personal")
def personal(
    ins: str,
    request: Request,
    actor: PageActor,
    title: Annotated[str, Form()],
    text: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
    unit: Annotated[str, Form()] = "",
) -> Response:
    kind = "measurement" if value else "document"
    doc = record_changes.PersonalDocument(title=title, kind=kind, text=text, value=value, unit=unit)
    with _conn(request) as conn:
        record_changes.add_personal(conn, actor, ins, doc, _now())
    return RedirectResponse(f"/records/{ins}", status_code=303)
