"""The admin app: health, ``/metrics``, the operations API (with its OpenAPI docs) and the
console."""

from __future__ import annotations

import swagger_ui_bundle  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from engine.admin import metrics
from engine.admin.api import api_router
from engine.admin.console import router as console_router
from engine.admin.context import AdminContext
from engine.admin.deps import identify
from engine.admin.health import readiness
from engine.admin.pages import router as pages_router
from engine.admin.services.errors import ServiceError
from engine.security.peers import is_loopback

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def create_app(ctx: AdminContext) -> FastAPI:
    app = FastAPI(
        title="Aiguillage operations API",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.admin = ctx
    exposition = metrics.Exposition(ctx.figures, ctx.state)
    metrics_open = ctx.settings.metrics_without_auth and is_loopback(ctx.settings.host)

    @app.exception_handler(ServiceError)
    async def refused(_: Request, exc: ServiceError) -> Response:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "alive"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        """200 when the journal is writable, every source bound and the broker (where one is
        configured) connected; 503 with the reasons otherwise."""
        reasons = await readiness(ctx.db, ctx.state)
        body = {"status": "not ready" if reasons else "ready", "reasons": reasons}
        return JSONResponse(body, status_code=503 if reasons else 200)

    @app.get("/metrics", tags=["health"])
    async def prometheus(request: Request) -> Response:
        """Prometheus text format; without credentials on a loopback listener when
        ``metrics_without_auth`` (the default)."""
        if not metrics_open and await identify(request) is None:
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        body = await run_in_threadpool(exposition.render)
        return Response(body, media_type=PROMETHEUS_TEXT)

    _docs(app)
    app.include_router(api_router())
    app.include_router(pages_router)  # before the console's: its "/" is the dashboard
    app.include_router(console_router)
    return app


def _docs(app: FastAPI) -> None:
    """Swagger UI from the installed swagger-ui-bundle package: no CDN."""
    assets = "/api/docs/assets"
    app.mount(assets, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs")

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title=app.title,
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        )
