"""Times as the admin API shows them: aware UTC (SQLite gives the journal's back naive)."""

from __future__ import annotations

from datetime import UTC, datetime


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
