"""What the MLLP source lets in: peers, connection caps with idle eviction, and junk budgets.

A refused connection is always logged (``mllp_connection_refused``, the peer's address and the
reason, never a byte it sent) and counted in ``MllpServer.counters``.

Junk (unframed bytes, frames intake refuses, frames that time out or are too large) is charged
to the peer's address with :class:`engine.security.abuse.PeerBudget`. The default budget is 60
refused payloads and 1 MiB a minute per address: a sender with a real problem (a wrong message
type, a bad character set) keeps every refusal as its own dead letter for a minute of steady
traffic, which is what an operator needs to diagnose it, while a peer spraying random bytes
adds at most 1 MiB (plus one payload of at most ``max_message_bytes`` head, 64 KiB) of dead
letters a minute to the journal. Past the budget its connection is closed, it is refused for
a backoff (5 s, doubling to 5 min while it goes on), and what it sent meanwhile becomes one
counted row (``junk_suppressed``: counts in ``properties``, a 64-byte head at most).
"""

from __future__ import annotations

import json
from asyncio import BaseTransport
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import structlog

from engine.channels.sources import MllpSourceConfig
from engine.errors import JunkSuppressed
from engine.intake.prepared import Prepared
from engine.intake.rules import MessageRules
from engine.security.abuse import PeerBudget
from engine.security.peers import peer_allowed

log = structlog.get_logger("engine.mllp")

#: Bytes of suppressed junk kept in its summary row: enough to recognise what it was.
SUPPRESSED_HEAD = 64
#: Peer accounts are swept for idle ones every this many admissions.
_SWEEP_EVERY = 256


class Connection(Protocol):
    """What the limits need to know of a connection."""

    host: str
    last_activity: float

    @property
    def idle(self) -> bool: ...

    def close(self, reason: str) -> None: ...


class Admission:
    """The connections of one source, and who may open one."""

    def __init__(self, config: MllpSourceConfig, channel: str, counters: Counter[str]) -> None:
        self.config = config
        self.channel = channel
        self.counters = counters
        self.budget = PeerBudget(config.junk)
        self.connections: dict[Connection, None] = {}  # insertion-ordered set
        self.per_peer: Counter[str] = Counter()
        self._admitted = 0

    def refusal(self, host: str) -> str | None:
        """Why a connection from ``host`` may not be opened (None: it may, perhaps after an
        idle connection was closed to make room)."""
        cfg = self.config
        if not peer_allowed(host, cfg.allowed_peers):
            return "peer_not_allowed"
        if self.budget.blocked_for(host) > 0:
            return "junk_backoff"
        if self.per_peer[host] >= cfg.max_connections_per_peer and not self._evict(
            lambda c: c.host == host
        ):
            return "max_connections_per_peer"
        if len(self.connections) >= cfg.max_connections and not self._evict(lambda c: True):
            return "max_connections"
        return None

    def refuse(self, transport: BaseTransport, host: str, reason: str) -> None:
        log.warning("mllp_connection_refused", channel=self.channel, peer=host, reason=reason)
        self.counters[f"refused_{reason}"] += 1
        transport.close()

    def add(self, conn: Connection) -> None:
        self.connections[conn] = None
        self.per_peer[conn.host] += 1
        self.counters["accepted"] += 1
        self._admitted += 1
        if self._admitted % _SWEEP_EVERY == 0:
            self.budget.forget_idle()

    def remove(self, conn: Connection) -> None:
        if conn in self.connections:
            del self.connections[conn]
            self.per_peer[conn.host] -= 1
            if self.per_peer[conn.host] <= 0:
                del self.per_peer[conn.host]

    def _evict(self, among: Callable[[Connection], bool]) -> bool:
        """Close the connection idle longest among ``among``; False when none is idle."""
        idle = [c for c in self.connections if c.idle and among(c)]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.last_activity)
        self.counters["evicted_idle"] += 1
        oldest.close("evicted_idle")
        self.remove(oldest)
        return True

    def charge(self, host: str, size: int) -> bool:
        """Charge one refused payload to ``host``: True to journal it, False when the peer is
        now over its budget (counted, not journaled)."""
        if self.budget.charge(host, size):
            return True
        self.counters["junk_suppressed_payloads"] += 1
        self.counters["junk_suppressed_bytes"] += size
        return False


def suppressed_summary(
    rules: MessageRules, peer: str, sender: str, counts: tuple[int, int], head: bytes
) -> Prepared:
    """One dead letter standing for every payload a peer sent past its budget."""
    payloads, size = counts
    error = JunkSuppressed(
        f"{payloads} refused payloads ({size} bytes) from this peer past its junk budget, "
        "not journaled one by one"
    )
    prepared = rules.prepare_rejected(head[:SUPPRESSED_HEAD], peer, error, sender)
    counted = {"suppressed_payloads": payloads, "suppressed_bytes": size}
    prepared.row.properties = json.dumps(counted)
    return prepared
