"""API bearer tokens with a role: shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from engine.admin.roles import Principal, Role
from engine.admin.tables import tokens
from engine.security.senders import hash_token, new_token

_t = tokens.c


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    name: str
    role: Role
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


def add_token(conn: Connection, name: str, role: Role, created_by: str) -> str:
    """A new token for ``name``; returns it (the only time it is seen)."""
    token = new_token()
    conn.execute(
        insert(tokens).values(
            name=name,
            role=role,
            token_hash=hash_token(token),
            created_at=datetime.now(UTC),
            created_by=created_by,
        )
    )
    return token


def list_tokens(conn: Connection) -> list[ApiToken]:
    rows = conn.execute(
        select(_t.id, _t.name, _t.role, _t.created_at, _t.created_by, _t.revoked_at).order_by(
            _t.name, _t.id
        )
    )
    return [ApiToken(r[0], r[1], Role(r[2]), r[3], r[4], r[5]) for r in rows]


def revoke_token(conn: Connection, name: str) -> int:
    """Revoke every live token of ``name``; how many."""
    return conn.execute(
        update(tokens)
        .where(_t.name == name, _t.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    ).rowcount


def token_principal(conn: Connection, token: str) -> Principal | None:
    row = conn.execute(
        select(_t.name, _t.role).where(_t.token_hash == hash_token(token), _t.revoked_at.is_(None))
    ).first()
    return None if row is None else Principal(row[0], Role(row[1]), "token")
