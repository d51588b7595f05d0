"""Refusals logged once per burst and always counted: a flood of refused connections or bad
tokens must not become a flood of log lines (20,000 half-open sockets once wrote 225 MB of
tracebacks in 40 s)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger("engine.http")


@dataclass
class BurstLog:
    """Per kind of refusal: a warning for the first, then at most one every ``interval``
    seconds, saying how many went unlogged since. ``counts`` holds every one."""

    channel: str
    interval: float = 10.0
    clock: Callable[[], float] = time.monotonic
    counts: Counter[str] = field(default_factory=Counter)
    _unlogged: Counter[str] = field(default_factory=Counter)
    _logged_at: dict[str, float] = field(default_factory=dict)

    def note(self, event: str, host: str) -> None:
        """Count one refusal of ``event`` from ``host`` (an address: never what it sent)."""
        self.counts[event] += 1
        now = self.clock()
        last = self._logged_at.get(event)
        if last is not None and now - last < self.interval:
            self._unlogged[event] += 1
            return
        self._logged_at[event] = now
        log.warning(
            event, channel=self.channel, peer=host, unlogged_since=self._unlogged.pop(event, 0)
        )
