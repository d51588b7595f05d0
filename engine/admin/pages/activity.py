"""Messages received per channel and minute over the last hour: the dashboard's sparklines.

A minute that has ended does not change, so its counts are read once and kept; a refresh reads
only the minute in progress (and any minute that ended since), one grouped range scan on
``received_at`` each. The API has no such figures: they are the console's alone.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import Engine

from engine.journal.message_tables import messages

_m = messages.c
MINUTE = timedelta(minutes=1)
#: Points on a sparkline: the last hour, one per minute (the last one still running).
POINTS = 60
#: A minute is kept only once this long past its end: a message received in its last
#: seconds may still be committing.
SETTLE = timedelta(seconds=15)


class Activity:
    def __init__(self, db: Engine) -> None:
        self.db = db
        self._ended: dict[datetime, dict[str, int]] = {}
        self._lock = threading.Lock()

    def series(self, now: datetime) -> dict[str, list[int]]:
        """Channel -> messages received in each of the last :data:`POINTS` minutes, oldest
        first (channels without any in the hour are left out)."""
        current = now.replace(second=0, microsecond=0)
        starts = [current - MINUTE * (POINTS - 1 - i) for i in range(POINTS)]
        with self._lock, self.db.connect() as conn:
            for old in [m for m in self._ended if m < starts[0]]:
                del self._ended[old]
            buckets = [self._minute(conn, start, now) for start in starts]
        channels = sorted({c for b in buckets for c in b})
        return {c: [b.get(c, 0) for b in buckets] for c in channels}

    def _minute(self, conn: Connection, start: datetime, now: datetime) -> dict[str, int]:
        kept = self._ended.get(start)
        if kept is not None:
            return kept
        counts = _counts(conn, start, start + MINUTE)
        if start + MINUTE + SETTLE <= now:
            self._ended[start] = counts
        return counts


def _counts(conn: Connection, start: datetime, end: datetime) -> dict[str, int]:
    query = (
        select(_m.channel, func.count())
        .where(_m.received_at >= start, _m.received_at < end)
        .group_by(_m.channel)
    )
    return {channel: int(n) for channel, n in conn.execute(query)}
