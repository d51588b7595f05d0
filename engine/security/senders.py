"""Authenticated senders of HTTP sources: bearer tokens, stored only as SHA-256 hashes.

A token is 32 random bytes (URL-safe base64), shown once by ``aiguillage senders add``. With
that much entropy a plain SHA-256 cannot be reversed or guessed, and it can be looked up by
value (argon2 is for passwords people choose).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.engine import Connection

from engine.db import metadata

Id = BigInteger().with_variant(Integer(), "sqlite")

senders = Table(
    "security_senders",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    UniqueConstraint("token_hash", name="uq_security_senders_token_hash"),
    Index("ix_security_senders_name_channel", "name", "channel"),
)

TOKEN_PREFIX = "aig_"


@dataclass(frozen=True, slots=True)
class Sender:
    id: int
    name: str
    channel: str
    created_at: datetime
    revoked_at: datetime | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def add_sender(conn: Connection, name: str, channel: str) -> str:
    """Register a sender of ``channel``; returns its token (the only time it is seen)."""
    token = new_token()
    conn.execute(
        senders.insert().values(
            name=name, channel=channel, token_hash=hash_token(token), created_at=_now()
        )
    )
    return token


def list_senders(conn: Connection, channel: str | None = None) -> list[Sender]:
    query = select(
        senders.c.id, senders.c.name, senders.c.channel, senders.c.created_at, senders.c.revoked_at
    ).order_by(senders.c.channel, senders.c.name, senders.c.id)
    if channel is not None:
        query = query.where(senders.c.channel == channel)
    return [Sender(*row) for row in conn.execute(query)]


def revoke_sender(conn: Connection, name: str, channel: str | None = None) -> int:
    """Revoke every live token of ``name`` (on ``channel`` only, when given); how many."""
    query = (
        update(senders)
        .where(senders.c.name == name, senders.c.revoked_at.is_(None))
        .values(revoked_at=_now())
    )
    if channel is not None:
        query = query.where(senders.c.channel == channel)
    return conn.execute(query).rowcount


def active_tokens(conn: Connection, channel: str) -> dict[str, str]:
    """Token hash -> sender name, for the live tokens of ``channel``."""
    rows = conn.execute(
        select(senders.c.token_hash, senders.c.name).where(
            senders.c.channel == channel, senders.c.revoked_at.is_(None)
        )
    )
    return {h: n for h, n in rows}


def _now() -> datetime:
    return datetime.now(UTC)
