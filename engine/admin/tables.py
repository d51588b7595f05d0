"""The admin tables: operators, API tokens, console sessions and the audit trail."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from engine.db import metadata
from engine.store.record_core import UtcDateTime

Id = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "admin_users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),  # argon2id, with its salt and parameters
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),
    Column("failed_logins", Integer, nullable=False, default=0, server_default="0"),
    Column("locked_until", UtcDateTime),
    UniqueConstraint("name", name="uq_admin_users_name"),
)

#: API bearer tokens, stored as SHA-256 hashes (32 random bytes: a hash cannot be reversed).
tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(128), nullable=False, default="", server_default=""),
    Column("revoked_at", UtcDateTime),
    UniqueConstraint("token_hash", name="uq_admin_tokens_token_hash"),
    Index("ix_admin_tokens_name", "name"),
)

#: Console sessions: the cookie holds a random token, the table its hash (a logout, a
#: disabled account or another console process all see the same sessions).
sessions = Table(
    "admin_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False),
    Column("user_id", Id, ForeignKey("admin_users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    UniqueConstraint("token_hash", name="uq_admin_sessions_token_hash"),
)

#: Append-only (migration 0010 adds triggers refusing UPDATE and DELETE): who did or saw what,
#: when, why, and the ids concerned. Never payloads nor traits themselves.
audit = Table(
    "admin_audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(160), nullable=False),  # "user:<name>", "token:<name>", "os:<login>"
    Column("action", String(64), nullable=False),
    Column("target", String(32), nullable=False, default="", server_default=""),
    Column("ids", Text, nullable=False, default="", server_default=""),  # JSON list
    Column("reason", Text, nullable=False, default="", server_default=""),
    Column("detail", Text, nullable=False, default="", server_default=""),  # JSON object
    Index("ix_admin_audit_at", "at"),
)
