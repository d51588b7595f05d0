"""Evaluate alert rules against the journal: each rule gives, per channel it watches, whether
its condition holds now (a :class:`Finding`). Summaries carry counts and ids, never patient
data."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, func, select, text

from engine.channels.alert_settings import (
    DeadLettersRule,
    ErrorRateRule,
    Rule,
    SilentRule,
    SizeRule,
    SourceDownRule,
    WaitingRule,
)
from engine.journal.message_tables import State, messages
from engine.localtime import aware

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FAILING = (State.DEAD_LETTERED, State.RETRYING)


class SourceStates(Protocol):
    """What the running engine knows of its sources: ``True`` up, ``False`` down, ``None``
    unknown (a channel this process does not run)."""

    def source_up(self, channel: str) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    channel: str  # "" for rules not about a channel
    firing: bool
    summary: str


@dataclass(frozen=True, slots=True)
class Context:
    conn: Connection
    now: datetime  # aware, UTC
    channels: tuple[str, ...]  # enabled channels
    timezone: ZoneInfo
    sources: SourceStates
    database_file: Path | None  # SQLite's file; None on PostgreSQL


def evaluate(rule: Rule, ctx: Context) -> list[Finding]:
    return _EVALUATORS[type(rule)](rule, ctx)


def _watched(rule: Rule, ctx: Context) -> tuple[str, ...]:
    named: tuple[str, ...] = getattr(rule, "channels", ())
    return named or ctx.channels


def _per_channel(
    rule: Rule, ctx: Context, value: Mapping[str, float], fires: Callable[[str, float], str | None]
) -> list[Finding]:
    """A finding per watched channel: ``fires`` returns the summary when the condition holds."""
    out = []
    for channel in _watched(rule, ctx):
        summary = fires(channel, value.get(channel, 0))
        out.append(Finding(rule.name, channel, summary is not None, summary or ""))
    return out


def _dead_letters(rule: DeadLettersRule, ctx: Context) -> list[Finding]:
    m = messages.c
    since = ctx.now - timedelta(minutes=rule.minutes)
    counts = _by_channel(ctx.conn, m.state == State.DEAD_LETTERED, m.updated_at >= since)

    def fires(channel: str, n: float) -> str | None:
        if n <= rule.count:
            return None
        return f"{channel}: {int(n)} dead letters in {rule.minutes:g} min (limit {rule.count})"

    return _per_channel(rule, ctx, counts, fires)


def _by_channel(conn: Connection, *where: ColumnElement[bool]) -> dict[str, float]:
    """Messages per channel matching ``where``."""
    query = select(messages.c.channel, func.count()).where(*where).group_by(messages.c.channel)
    return {channel: float(count) for channel, count in conn.execute(query)}


def _error_rate(rule: ErrorRateRule, ctx: Context) -> list[Finding]:
    m = messages.c
    since = ctx.now - timedelta(minutes=rule.minutes)
    rows = ctx.conn.execute(
        select(m.channel, m.state, func.count())
        .where(m.received_at >= since)
        .group_by(m.channel, m.state)
    ).all()
    total: dict[str, int] = {}
    failing: dict[str, int] = {}
    for channel, state, count in rows:
        total[channel] = total.get(channel, 0) + count
        if state in _FAILING:
            failing[channel] = failing.get(channel, 0) + count

    def fires(channel: str, _: float) -> str | None:
        n, bad = total.get(channel, 0), failing.get(channel, 0)
        if n < rule.min_messages or bad / n < rule.threshold:
            return None
        return (
            f"{channel}: {bad} of {n} messages failing in {rule.minutes:g} min "
            f"({bad / n:.0%}, threshold {rule.threshold:.0%})"
        )

    return _per_channel(rule, ctx, {}, fires)


def _silent(rule: SilentRule, ctx: Context) -> list[Finding]:
    local = ctx.now.astimezone(ctx.timezone)
    if not watching(rule, local):
        return [Finding(rule.name, c, False, "") for c in _watched(rule, ctx)]
    out = []
    for channel in _watched(rule, ctx):
        last = _last_received(ctx.conn, channel)
        quiet = (ctx.now - last).total_seconds() / 60 if last else None
        # A channel that never received anything is silent too, as soon as it is watched.
        firing = quiet is None or quiet > rule.minutes
        since = "no message yet" if last is None else f"none for {quiet:.0f} min"
        summary = f"{channel}: {since} (limit {rule.minutes:g} min)" if firing else ""
        out.append(Finding(rule.name, channel, firing, summary))
    return out


def watching(rule: SilentRule, local: datetime) -> bool:
    """Whether ``local`` (in the engine's time zone) is within the rule's days and hours."""
    now = local.time().replace(tzinfo=None)
    if rule.from_ <= rule.until:
        inside = rule.from_ <= now <= rule.until
    else:  # spans midnight, e.g. 20:00-06:00
        inside = now >= rule.from_ or now <= rule.until
    return inside and _DAYS[local.weekday()] in rule.days


def _last_received(conn: Connection, channel: str) -> datetime | None:
    m = messages.c
    # The newest id of a channel is found through (channel, id); its time follows.
    at = conn.execute(
        select(m.received_at).where(m.channel == channel).order_by(m.id.desc()).limit(1)
    ).scalar()
    return None if at is None else aware(at)


def _waiting(rule: WaitingRule, ctx: Context) -> list[Finding]:
    m = messages.c
    before = ctx.now - timedelta(minutes=rule.minutes)
    counts = _by_channel(ctx.conn, m.state == rule.state, m.received_at < before)
    what = "held for their patient" if rule.state == "held" else "waiting for identity review"

    def fires(channel: str, n: float) -> str | None:
        if not n:
            return None
        return f"{channel}: {int(n)} message(s) {what} for more than {rule.minutes:g} min"

    return _per_channel(rule, ctx, counts, fires)


def _source_down(rule: SourceDownRule, ctx: Context) -> list[Finding]:
    out = []
    for channel in _watched(rule, ctx):
        up = ctx.sources.source_up(channel)
        if up is None:  # not run by this process: another one watches it
            continue
        out.append(Finding(rule.name, channel, not up, "" if up else f"{channel}: source down"))
    return out


def _size(rule: SizeRule, ctx: Context) -> list[Finding]:
    if rule.what == "journal":
        mb = journal_bytes(ctx.conn, ctx.database_file) / 1e6
        assert rule.max_mb is not None  # checked by the model
        firing = mb > rule.max_mb
        summary = f"journal database {mb:.0f} MB (limit {rule.max_mb:g} MB)"
    else:
        where = ctx.database_file.parent if ctx.database_file else Path.cwd()
        usage = shutil.disk_usage(where)
        percent = 100 * usage.used / usage.total
        assert rule.max_percent is not None
        firing = percent > rule.max_percent
        summary = f"disk of {where} {percent:.0f}% used (limit {rule.max_percent:g}%)"
    return [Finding(rule.name, "", firing, summary if firing else "")]


def journal_bytes(conn: Connection, database_file: Path | None) -> int:
    """The database's size: SQLite's file and its write-ahead log, or PostgreSQL's own count."""
    if database_file is None:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    files: Iterable[Path] = (database_file, database_file.with_name(database_file.name + "-wal"))
    return sum(os.stat(f).st_size for f in files if f.exists())


_EVALUATORS: dict[type, Callable[..., list[Finding]]] = {
    DeadLettersRule: _dead_letters,
    ErrorRateRule: _error_rate,
    SilentRule: _silent,
    WaitingRule: _waiting,
    SourceDownRule: _source_down,
    SizeRule: _size,
}
