"""The alert history: one row per alert, from the moment it fires until it resolves.

At most one open row (``resolved_at`` empty) per rule and channel, enforced by a partial unique
index: when two engine processes watch the same journal, only the first to fire an alert
records it and notifies.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, text

from engine.db import metadata
from engine.store.record_core import UtcDateTime

Id = BigInteger().with_variant(Integer(), "sqlite")

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("channel", String(64), nullable=False, server_default=""),
    Column("fired_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime()),
    Column("summary", Text, nullable=False),
    Column("resolution", Text),
    Index(
        "uq_alerts_open",
        "rule",
        "channel",
        unique=True,
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
    Index("ix_alerts_fired_at", "fired_at"),
)
