"""The record listener's ASGI app: the JSON API under ``/api/v1/records`` (OpenAPI at
``/openapi.json``), the pages for professionals and patients, and their vendored assets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine as DbEngine

from engine.channels.record_api_settings import RecordApiSettings
from engine.errors import RecordKeyError
from engine.record_api import pages, routes
from engine.store.record_access import Refused

STATIC = Path(__file__).parent / "static"
log = structlog.get_logger("engine.record_api")


def create_app(
    db: DbEngine,
    settings: RecordApiSettings | None = None,
    certificates: dict[tuple[str, int], dict[str, Any]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Aiguillage shared record",
        description="The shared record's read side under the DMP's rules (DOMAIN.md §6).",
        version="1",
        # The schema only: FastAPI's Swagger and ReDoc pages load their assets from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.db = db
    app.state.settings = settings or RecordApiSettings()
    app.state.certificates = certificates if certificates is not None else {}
    app.include_router(routes.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"reason": exc.reason}, status_code=exc.status)
        return pages.refused_page(request, exc)

    @app.exception_handler(RecordKeyError)
    async def unreadable(request: Request, exc: RecordKeyError) -> Response:
        # A sealed document that does not open (changed, or its key lost): an alarm, not a
        # dropped connection. The reason names rows and keys only.
        log.error("document_unreadable", code=exc.code, reason=exc.reason)
        return JSONResponse({"reason": exc.code}, status_code=500)

    @app.exception_handler(pages.SignIn)
    async def sign_in(request: Request, exc: pages.SignIn) -> Response:
        return RedirectResponse("/", status_code=303)

    return app
