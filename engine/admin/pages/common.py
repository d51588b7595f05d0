"""What every console page shares: the templates and their filters, who is asking, error
pages, and the vendored static files.

Pages are thin: they read the request, call the same services as the JSON API
(:mod:`engine.admin.services`), and render. A page without a session redirects to the login;
a refusal (role, missing reason, unknown id) is shown as a page with the service's reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from engine.admin.deps import context, identify, principal
from engine.admin.roles import Principal
from engine.admin.services.errors import ServiceError
from engine.localtime import age_text, local_text

_ADMIN = Path(__file__).resolve().parents[1]
STATIC = _ADMIN / "static"
templates = Jinja2Templates(directory=_ADMIN / "templates")
templates.env.filters["age"] = age_text
templates.env.filters["seconds"] = lambda s: age_text(datetime.now(UTC) - timedelta(seconds=s))

router = APIRouter(include_in_schema=False)

#: The console's own files, served by name (no directory listing, no path from the request).
_STATIC_TYPES = {"console.css": "text/css", "refresh.js": "text/javascript"}


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    kind = _STATIC_TYPES.get(name)
    if kind is None:
        raise HTTPException(404)
    headers = {"Cache-Control": "max-age=3600"}
    return FileResponse(STATIC / name, media_type=kind, headers=headers)


Who = Annotated[Principal | None, Depends(identify)]


def to_login() -> Response:
    return RedirectResponse("/login", status_code=303)


async def acting(request: Request) -> Principal | Response:
    """The principal behind a form post (its CSRF token checked), or an error page."""
    try:
        return await principal(request)
    except HTTPException as exc:
        if exc.status_code == 401:
            return to_login()
        return page(request, None, "error.html", {"reason": str(exc.detail)}, exc.status_code)


def page(
    request: Request,
    who: Principal | None,
    name: str,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    ctx = context(request)
    zone = ctx.config.engine.timezone
    data = {"who": who, "local": lambda t: local_text(t, zone), "path": request.url.path}
    data.update(values or {})
    return templates.TemplateResponse(request, name, data, status)


def refused(request: Request, who: Principal | None, exc: ServiceError) -> Response:
    return page(request, who, "error.html", {"reason": exc.reason}, exc.status)


def link(path: str, params: dict[str, Any]) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def done(path: str, notice: str) -> Response:
    """After a form post: back to a page that says what was done (post, redirect, get)."""
    return RedirectResponse(link(path, {"notice": notice}), status_code=303)
