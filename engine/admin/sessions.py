"""Console sessions: a random token in an HttpOnly cookie, its hash and CSRF token here."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, insert, select

from engine.admin.roles import Principal, Role
from engine.admin.tables import sessions, users
from engine.security.senders import hash_token

_s = sessions.c


def open_session(conn: Connection, user_id: int, lifetime: timedelta) -> str:
    """A new session for ``user_id``; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    conn.execute(delete(sessions).where(_s.expires_at < now))  # housekeeping, cheap
    conn.execute(
        insert(sessions).values(
            token_hash=hash_token(token),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def session_principal(conn: Connection, token: str) -> Principal | None:
    """The live session's user (an expired session or a disabled account: None)."""
    row = conn.execute(
        select(users.c.name, users.c.role, _s.csrf_token)
        .join(users, users.c.id == _s.user_id)
        .where(
            _s.token_hash == hash_token(token),
            _s.expires_at > datetime.now(UTC),
            users.c.disabled_at.is_(None),
        )
    ).first()
    return None if row is None else Principal(row[0], Role(row[1]), "user", csrf_token=row[2])


def close_session(conn: Connection, token: str) -> None:
    conn.execute(delete(sessions).where(_s.token_hash == hash_token(token)))


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected and given and hmac.compare_digest(expected, given))
