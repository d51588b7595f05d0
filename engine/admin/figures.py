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

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.engine import Engine

from engine.admin.times import aware
from engine.fastsql import FastStatement
from engine.journal.message_tables import State, messages
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


#: Per (channel, state): one index seek or range (ix_journal_messages_channel_state_received_at).
_COUNT = FastStatement(
    select(func.count()).where(_m.channel == bindparam("c"), _m.state == bindparam("s"))
)
_OLDEST = FastStatement(
    select(func.min(_m.received_at)).where(_m.channel == bindparam("c"), _m.state == bindparam("s"))
)
_LAST = FastStatement(
    select(_m.received_at).where(_m.channel == bindparam("c")).order_by(_m.id.desc()).limit(1)
)
_SINCE = FastStatement(
    select(func.count()).where(_m.channel == bindparam("c"), _m.id >= bindparam("first"))
)
#: The states whose counts are read on every snapshot; the others change slowly and are
#: counted in full only every few snapshots (a scan of the whole journal).
LIVE = (*WAITING, State.DEAD_LETTERED)


def take_snapshot(
    conn: Connection,
    configured: Sequence[str],
    now: datetime,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Figures per channel: configured channels, and those only the journal knows (removed
    from the configuration). Without ``previous``, every state is counted (a full scan);
    with it, only :data:`LIVE` states, the others carried over."""
    figures = {name: ChannelFigures(name, True) for name in configured}
    if previous is None:
        for channel, state, n in conn.execute(
            select(_m.channel, _m.state, func.count()).group_by(_m.channel, _m.state)
        ):
            figures.setdefault(channel, ChannelFigures(channel, False)).counts[state] = int(n)
    else:
        for name, old in previous.channels.items():
            kept = {k: v for k, v in old.counts.items() if k not in LIVE}
            figures.setdefault(name, ChannelFigures(name, False)).counts.update(kept)
    for f in figures.values():
        _live(conn, f, full=previous is None)
    _rates(conn, figures, now)
    return Snapshot(now, figures)


def _live(conn: Connection, f: ChannelFigures, full: bool) -> None:
    for state in LIVE:
        if not full:
            n = int(_COUNT.execute(conn, {"c": f.channel, "s": state})[0][0])
            f.counts.pop(state.value, None)
            if n:
                f.counts[state.value] = n
        if state in WAITING and f.counts.get(state):
            oldest = _OLDEST.execute(conn, {"c": f.channel, "s": state})[0][0]
            if oldest is not None:
                f.oldest_waiting[state.value] = as_time(oldest)
    last = _LAST.execute(conn, {"c": f.channel})
    f.last_received_at = as_time(last[0][0]) if last else None


def _rates(conn: Connection, figures: dict[str, ChannelFigures], now: datetime) -> None:
    firsts = {w: first_id_since(conn, now - timedelta(minutes=w)) for w in WINDOWS}
    for f in figures.values():
        f.rates = {}
        for minutes, first in firsts.items():
            n = 0
            if first is not None:
                n = int(_SINCE.execute(conn, {"c": f.channel, "first": first})[0][0])
            f.rates[f"{minutes}m"] = round(n / minutes, 3)


def as_time(value: datetime | str) -> datetime:
    """A journal time as read raw from the driver (SQLite: text), aware UTC."""
    return aware(datetime.fromisoformat(value) if isinstance(value, str) else value)


class FiguresCache:
    """The latest snapshot, taken again when older than ``max_age`` seconds (one taker at a
    time: concurrent readers get the previous one rather than a second count)."""

    #: A full count of every state once in this many snapshots (the others read only the
    #: states that move: waiting ones and dead letters).
    FULL_EVERY = 12
    #: The most of its time the engine spends counting: a snapshot that took ``t`` seconds is
    #: kept at least ``t / BUSY_SHARE`` (counting a backlog of a million messages takes a
    #: good part of a second; the figures then age longer, as their ``taken_at`` says).
    BUSY_SHARE = 0.05

    def __init__(self, db: Engine, configured: Callable[[], Sequence[str]], max_age: float) -> None:
        self.db = db
        self.configured = configured
        self.max_age = max_age
        self._snapshot: Snapshot | None = None
        self._taken = 0.0
        self._taken_count = 0
        self._took = 0.0  # seconds the last snapshot took
        self._lock = threading.Lock()

    @property
    def age_allowed(self) -> float:
        """How old the snapshot may get before it is taken again: ``max_age``, or longer when
        taking it is slow (see ``BUSY_SHARE``)."""
        return max(self.max_age, self._took / self.BUSY_SHARE)

    def get(self) -> Snapshot:
        """The snapshot; a new one when it is too old, unless one is being taken (then the
        previous one: a reader never waits for a count when it has figures to show)."""
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - self._taken < self.age_allowed:
            return snapshot
        fresh = self.refresh(wait=snapshot is None)
        if fresh is not None:
            return fresh
        assert snapshot is not None  # refresh(wait=True) returns one
        return snapshot

    def refresh(self, wait: bool = True) -> Snapshot | None:
        """Take a snapshot now (None, without waiting, when one is already being taken)."""
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            previous = self._snapshot if self._taken_count % self.FULL_EVERY else None
            started = time.monotonic()
            with self.db.connect() as conn:
                snapshot = take_snapshot(conn, self.configured(), datetime.now(UTC), previous)
            self._snapshot, self._taken = snapshot, time.monotonic()
            self._took = self._taken - started
            self._taken_count += 1
            return snapshot
        finally:
            self._lock.release()
