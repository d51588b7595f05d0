"""Server-rendered pages of the record (Jinja2, vendored assets)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine.store.record_access import Refused

router = APIRouter(include_in_schema=False)


def refused_page(request: Request, exc: Refused) -> HTMLResponse:
    return HTMLResponse(f"<p>{exc.reason}</p>", status_code=exc.status)
