"""The console's login, logout and (placeholder) dashboard; the other pages build on
:mod:`engine.admin.deps` and the services.

The login form is protected by a double-submit token (a cookie and a field that must match)
because no session exists yet; once logged in, forms carry the session's CSRF token.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from engine.admin import audit, sessions, users
from engine.admin.context import AdminContext
from engine.admin.deps import SESSION_COOKIE, Context, context, identify, principal
from engine.admin.roles import Principal
from engine.admin.services.channels import channel_overview
from engine.admin.sessions import csrf_matches

LOGIN_CSRF_COOKIE = "aiguillage_login_csrf"
templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
router = APIRouter(include_in_schema=False)


def _secure(ctx: AdminContext) -> bool:
    return ctx.settings.tls is not None


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ctx: Context) -> Response:
    return _login_form(request, ctx, None, 200)


def _login_form(request: Request, ctx: AdminContext, error: str | None, status: int) -> Response:
    token = secrets.token_urlsafe(32)
    page = templates.TemplateResponse(
        request, "login.html", {"csrf_token": token, "error": error, "who": None}, status
    )
    page.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(ctx))
    return page


@router.post("/login")
async def login(
    request: Request,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    ctx = context(request)
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_form(request, ctx, "The form expired: try again.", 403)
    cookie = await run_in_threadpool(_authenticate, ctx, name, password)
    if cookie is None:
        return _login_form(request, ctx, "Wrong name or password, or the account is locked.", 401)
    done = RedirectResponse("/", status_code=303)
    done.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(ctx.session_lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=_secure(ctx),
    )
    done.delete_cookie(LOGIN_CSRF_COOKIE)
    return done


def _authenticate(ctx: AdminContext, name: str, password: str) -> str | None:
    """The new session's cookie, or None; the attempt is audited either way."""
    with ctx.db.begin() as conn:
        s = ctx.settings
        user = users.authenticate(conn, name, password, s.max_failed_logins, ctx.lockout)
        actor = f"user:{name[:120]}"
        if user is None:
            audit.record(conn, actor, "login_failed")
            return None
        audit.record(conn, actor, "login")
        return sessions.open_session(conn, user.id, ctx.session_lifetime)


@router.post("/logout")
async def logout(request: Request) -> Response:
    who = await principal(request)  # a session, with its CSRF token in the form
    ctx = context(request)
    await run_in_threadpool(_close, ctx, who, request.cookies.get(SESSION_COOKIE, ""))
    done = RedirectResponse("/login", status_code=303)
    done.delete_cookie(SESSION_COOKIE)
    return done


def _close(ctx: AdminContext, who: Principal, cookie: str) -> None:
    with ctx.db.begin() as conn:
        sessions.close_session(conn, cookie)
        audit.record(conn, who, "logout")


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> Response:
    who = await identify(request)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    ctx = context(request)
    channels = await run_in_threadpool(channel_overview, ctx.figures, ctx.state)
    return templates.TemplateResponse(request, "dashboard.html", {"who": who, "channels": channels})
