"""Who a request comes from: a bearer token (professional, patient, representative), or the
client certificate of its TLS connection, whose subject carries a registered professional's
RPPS (CN, serialNumber or UID, as ``8`` + RPPS or the RPPS alone)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy import Connection
from sqlalchemy.engine import Engine as DbEngine

from engine.adapters.http_auth import bearer
from engine.record.model import Actor
from engine.store.record_people import actor_for_rpps, actor_for_token

_RPPS = re.compile(r"(?<!\d)8?(\d{11})(?!\d)")
_SUBJECT_KEYS = ("commonName", "serialNumber", "userId")
SESSION_COOKIE = "record_token"


def rpps_in_certificate(cert: dict[str, Any] | None) -> str:
    """The RPPS a verified client certificate's subject names, or ``""``."""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            found = _RPPS.search(value) if key in _SUBJECT_KEYS else None
            if found:
                return found.group(1)
    return ""


def identify(request: Request, db: DbEngine) -> Actor | None:
    with db.connect() as conn:
        return identify_in(request, conn)


def identify_in(request: Request, conn: Connection) -> Actor | None:
    """The request's actor, looked up on ``conn`` (in the caller's transaction)."""
    certificates: dict[tuple[str, int], dict[str, Any]] = request.app.state.certificates
    client = (request.client.host, request.client.port) if request.client else ("", 0)
    token = bearer(request.headers.get("authorization", "")) or request.cookies.get(
        SESSION_COOKIE, ""
    )
    if token:
        return actor_for_token(conn, token)
    rpps = rpps_in_certificate(certificates.get(client))
    return actor_for_rpps(conn, rpps) if rpps else None


def authenticated(request: Request, conn: Connection) -> Actor:
    """The actor, or 401 with a Bearer challenge; looked up on the request's own connection
    (the reads do so: one transaction for the token, the record and its access-log line)."""
    actor = identify_in(request, conn)
    if actor is None:
        raise HTTPException(
            status_code=401,
            detail={"reason": "unauthenticated"},
            headers={"WWW-Authenticate": 'Bearer realm="record"'},
        )
    return actor


async def require_actor(request: Request) -> Actor:
    """FastAPI dependency of the writes: the actor, or 401 with a Bearer challenge, before the
    body is read. On the event loop: one indexed lookup costs less than a hop to the thread
    pool and back (measured)."""
    with request.app.state.db.connect() as conn:
        return authenticated(request, conn)
