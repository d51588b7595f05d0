"""Per-channel figures from the journal: counts per state, rates, last message, oldest
waiting message per state. One snapshot serves ``/metrics``, the channels API and the
dashboard; it is refreshed at most every few seconds, so a scrape or a page never waits for a
count over millions of rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import Engine

from engine.admin.times import aware
from engine.journal.models import State, messages
from engine.journal.search import first_id_since

_m = messages.c
WAITING = (State.RECEIVED, State.RETRYING, State.HELD, State.REVIEW)
#: Rate windows, in minutes.
WINDOWS = (1, 5, 60)


@dataclass(slots=True)
class ChannelFigures:
    channel: str
    configured: bool
    counts: dict[str, int] = field(default_factory=dict)
    #: Messages received per minute over the last 1, 5 and 60 minutes.
    rates: dict[str, float] = field(default_factory=dict)
    last_received_at: datetime | None = None
    #: Per waiting state, when its oldest message was received.
    oldest_waiting: dict[str, datetime] = field(default_factory=dict)

    def oldest_waiting_seconds(self, now: datetime) -> dict[str, float]:
        return {s: max(0.0, (now - at).total_seconds()) for s, at in self.oldest_waiting.items()}


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: datetime
    channels: dict[str, ChannelFigures]


def take_snapshot(conn: Connection, configured: Sequence[str], now: datetime) -> Snapshot:
    figures = {name: ChannelFigures(name, True) for name in configured}
    for channel, state, n in conn.execute(
        select(_m.channel, _m.state, func.count()).group_by(_m.channel, _m.state)
    ):
        figures.setdefault(channel, ChannelFigures(channel, False)).counts[state] = int(n)
    for channel, state, oldest in conn.execute(
        select(_m.channel, _m.state, func.min(_m.received_at))
        .where(_m.state.in_(WAITING))
        .group_by(_m.channel, _m.state)
    ):
        figures[channel].oldest_waiting[state] = aware(oldest)
    for f in figures.values():
        last = conn.execute(
            select(_m.received_at).where(_m.channel == f.channel).order_by(_m.id.desc()).limit(1)
        ).scalar()
        f.last_received_at = aware(last) if last is not None else None
    _rates(conn, figures, now)
    return Snapshot(now, figures)


def _rates(conn: Connection, figures: dict[str, ChannelFigures], now: datetime) -> None:
    for f in figures.values():
        f.rates = {f"{w}m": 0.0 for w in WINDOWS}
    for minutes in WINDOWS:
        first = first_id_since(conn, now - timedelta(minutes=minutes))
        if first is None:
            continue
        for channel, n in conn.execute(
            select(_m.channel, func.count()).where(_m.id >= first).group_by(_m.channel)
        ):
            if channel in figures:
                figures[channel].rates[f"{minutes}m"] = round(int(n) / minutes, 3)


class FiguresCache:
    """The latest snapshot, taken again when older than ``max_age`` seconds (one taker at a
    time: concurrent readers get the previous one rather than a second count)."""

    def __init__(self, db: Engine, configured: Callable[[], Sequence[str]], max_age: float) -> None:
        self.db = db
        self.configured = configured
        self.max_age = max_age
        self._snapshot: Snapshot | None = None
        self._taken = 0.0
        self._lock = threading.Lock()

    def get(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - self._taken < self.max_age:
            return snapshot
        if not self._lock.acquire(blocking=snapshot is None):
            assert snapshot is not None
            return snapshot
        try:
            return self.refresh()
        finally:
            self._lock.release()

    def refresh(self) -> Snapshot:
        with self.db.connect() as conn:
            snapshot = take_snapshot(conn, self.configured(), datetime.now(UTC))
        self._snapshot, self._taken = snapshot, time.monotonic()
        return snapshot
