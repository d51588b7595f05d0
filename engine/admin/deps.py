"""Request dependencies: the context, a database connection, and who is asking.

Every API route needs a bearer token (``aiguillage tokens add``) or a console session; a
session's unsafe requests (POST, PUT, DELETE) must also echo its CSRF token, in the
``X-CSRF-Token`` header or a ``csrf_token`` form field, so another site cannot act through an
operator's browser. 401 without valid credentials, 403 outside the role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from engine.admin.context import AdminContext
from engine.admin.roles import Principal, Role
from engine.admin.sessions import csrf_matches, session_principal
from engine.admin.tokens import token_principal

SESSION_COOKIE = "aiguillage_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def context(request: Request) -> AdminContext:
    ctx: AdminContext = request.app.state.admin
    return ctx


Context = Annotated[AdminContext, Depends(context)]


def connection(ctx: Context) -> Iterator[Connection]:
    with ctx.db.connect() as conn:
        yield conn


def read_connection(ctx: Context) -> Iterator[Connection]:
    with ctx.reader.connect() as conn:
        yield conn


#: For routes that write (actions, audited views).
Conn = Annotated[Connection, Depends(connection)]
#: For routes that only read.
ReadConn = Annotated[Connection, Depends(read_connection)]


def _lookup(ctx: AdminContext, bearer: str | None, cookie: str | None) -> Principal | None:
    with ctx.reader.connect() as conn:
        if bearer:
            return token_principal(conn, bearer)
        if cookie:
            return session_principal(conn, cookie)
    return None


async def identify(request: Request) -> Principal | None:
    """The principal behind a request, or None (no credentials, or invalid ones)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    cookie = None if bearer else request.cookies.get(SESSION_COOKIE)
    if not bearer and not cookie:
        return None
    return await run_in_threadpool(_lookup, context(request), bearer, cookie)


async def principal(request: Request) -> Principal:
    who = await identify(request)
    if who is None:
        raise HTTPException(401, "credentials required", {"WWW-Authenticate": "Bearer"})
    if who.kind == "user" and request.method not in _SAFE:
        given = request.headers.get(CSRF_HEADER)
        if given is None and _is_form(request):
            given = str((await request.form()).get(CSRF_FIELD) or "")
        if not csrf_matches(who.csrf_token, given):
            raise HTTPException(403, "missing or wrong CSRF token")
    return who


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def dependency(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.role.allows(role):
            raise HTTPException(403, f"needs the {role.value} role")
        return who

    return dependency


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "")
    return kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
