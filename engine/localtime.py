"""Times for people and for scripts: people read the engine's local time with its zone
(``engine.timezone``); JSON carries ISO-8601 UTC ending in ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field

DEFAULT_TIMEZONE = "Europe/Paris"


def _known_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Paris)") from exc
    return name


TimeZoneName = Annotated[
    str,
    AfterValidator(_known_zone),
    Field(description="IANA time zone of the times shown to people and of alert hours"),
]


def aware(value: datetime) -> datetime:
    """A journal time as aware UTC (SQLite gives them back naive, in UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def local_text(value: datetime | None, zone: str = DEFAULT_TIMEZONE) -> str:
    """``2026-12-03 15:04:05 CET``: local time with its zone abbreviation."""
    if value is None:
        return ""
    return aware(value).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def utc_z(value: datetime) -> str:
    """``2026-12-03T14:04:05.123456Z``."""
    return aware(value).isoformat().replace("+00:00", "Z")


def age_text(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, for people: ``3 d 4 h``, ``2 h 5 min``, ``4 min``, ``12 s``."""
    if value is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - aware(value)) / timedelta(seconds=1))
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_since(text: str, zone: str = DEFAULT_TIMEZONE, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``1d`` (ago), or a date or time in ISO form (local time unless it
    names its zone), as aware UTC. Raises ValueError."""
    text = text.strip()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    if number and unit in _UNITS:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(number) * _UNITS[unit])
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r}: give 30m, 2h, 1d or a date such as 2026-12-03T08:00") from None
    return (at if at.tzinfo else at.replace(tzinfo=ZoneInfo(zone))).astimezone(UTC)
