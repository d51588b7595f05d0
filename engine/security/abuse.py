"""Bounding what one peer may cost: junk and refused payloads per minute, then backoff.

Every source charges the payloads it had to refuse (unframed bytes, unparseable frames, empty
or refused bodies) to the peer's address. Within the budget each one is journaled as its own
dead letter, as contract 7 asks; past it the peer is cut off for a backoff that doubles while it
goes on (reset after a quiet backoff period), and what it sent meanwhile is only counted. So no
peer can grow the journal by more than ``max_bytes_per_minute`` (plus one payload) a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class JunkLimits(BaseModel):
    """What one peer address may send that has to be refused, per minute."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_refused_per_minute: int = Field(
        default=60, ge=1, description="refused payloads (unparseable, junk) journaled per minute"
    )
    max_refused_bytes_per_minute: int = Field(
        default=1024 * 1024, ge=1024, description="their bytes journaled per minute"
    )
    backoff_seconds: float = Field(
        default=5.0, gt=0, description="first cut-off past the limit; doubles while it goes on"
    )
    max_backoff_seconds: float = Field(default=300.0, gt=0)


@dataclass(slots=True)
class _Peer:
    window_start: float
    refused: int = 0
    bytes: int = 0
    blocked_until: float = 0.0
    backoff: float = 0.0
    #: What was refused and not journaled since the last summary (counted rows).
    suppressed: int = 0
    suppressed_bytes: int = 0


@dataclass
class PeerBudget:
    """The per-address accounts of one source (not thread-safe: the event loop's)."""

    limits: JunkLimits
    clock: Callable[[], float] = time.monotonic
    _peers: dict[str, _Peer] = field(default_factory=dict)

    def blocked_for(self, host: str) -> float:
        """Seconds this peer is still cut off (0: it may send)."""
        peer = self._peers.get(host)
        return max(0.0, peer.blocked_until - self.clock()) if peer else 0.0

    def charge(self, host: str, size: int) -> bool:
        """Count one refused payload of ``size`` bytes. True: journal it; False: the peer is
        over its budget (now cut off): count it, do not journal it."""
        now = self.clock()
        peer = self._peers.get(host)
        if peer is None:
            peer = self._peers[host] = _Peer(window_start=now)
        if now - peer.window_start >= 60:
            peer.window_start, peer.refused, peer.bytes = now, 0, 0
            if now - peer.blocked_until > peer.backoff:  # quiet for a whole backoff: forgiven
                peer.backoff = 0.0
        if now < peer.blocked_until:
            self._suppress(peer, size)
            return False
        peer.refused += 1
        peer.bytes += size
        if (
            peer.refused > self.limits.max_refused_per_minute
            or peer.bytes > self.limits.max_refused_bytes_per_minute
        ):
            peer.backoff = min(
                self.limits.max_backoff_seconds,
                peer.backoff * 2 if peer.backoff else self.limits.backoff_seconds,
            )
            peer.blocked_until = now + peer.backoff
            self._suppress(peer, size)
            return False
        return True

    def take_suppressed(self, host: str) -> tuple[int, int]:
        """Payloads and bytes refused without a journal row since the last call."""
        peer = self._peers.get(host)
        if peer is None:
            return 0, 0
        counted = peer.suppressed, peer.suppressed_bytes
        peer.suppressed = peer.suppressed_bytes = 0
        return counted

    def forget_idle(self, older_than: float = 3600.0) -> None:
        """Drop the accounts of peers quiet for ``older_than`` seconds (memory stays bounded)."""
        now = self.clock()
        for host in [
            h
            for h, p in self._peers.items()
            if now - max(p.window_start, p.blocked_until) > older_than and not p.suppressed
        ]:
            del self._peers[host]

    @staticmethod
    def _suppress(peer: _Peer, size: int) -> None:
        peer.suppressed += 1
        peer.suppressed_bytes += size
