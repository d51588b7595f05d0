"""The HTTP source's guard on connections: who may connect, how many, and for how long.

uvicorn offers ``limit_concurrency`` (a 503 *after* the connection is open, its descriptor
taken) and ``timeout_keep_alive``, but no timeout for headers or bodies: a client that sends
half a request holds its descriptor for ever. So the source gives uvicorn its own protocol
class (``uvicorn.Config(http=...)``), a subclass of uvicorn's h11 protocol that, before any
byte is read:

- closes a peer outside ``allowed_peers``;
- applies ``max_connections_per_peer`` and ``max_connections``; at the cap the oldest
  connection without a request in progress (idle, or still sending its headers) is closed to
  admit the new one, else the new one is closed;
- serves TLS itself (``loop.start_tls``), so that the checks above come before the handshake,
  and checks mTLS subjects once it is done.

Then it times each request: its headers must be complete within ``header_timeout_seconds``
(the TLS handshake included), its whole body within ``body_timeout_seconds`` (``408``, then
the connection is closed). Every refusal is counted and logged once per burst.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.adapters.http_log import BurstLog
from engine.security.peers import Network, peer_allowed
from engine.security.tls import ServerTls, certificate_identity

_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b'connection: close\r\ncontent-length: 37\r\n\r\n{"status": "timeout", "code": "body"}'
)


@dataclass(frozen=True, slots=True)
class GuardLimits:
    max_connections: int
    max_connections_per_peer: int
    header_timeout: float
    body_timeout: float
    allowed_peers: tuple[Network, ...] = ()
    tls: ServerTls | None = None


@dataclass
class Gate:
    """The open connections of one source and what it refused (the event loop's only)."""

    limits: GuardLimits
    events: BurstLog
    ssl: ssl.SSLContext | None = None
    #: Open connections, oldest first (a dict keeps insertion order).
    open: dict[GuardedProtocol, None] = field(default_factory=dict)
    per_peer: Counter[str] = field(default_factory=Counter)
    #: ``cert:<CN>`` of each mTLS connection, by client (host, port).
    identities: dict[tuple[str, int], str] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def admit(self, conn: GuardedProtocol, host: str) -> bool:
        limits = self.limits
        if not peer_allowed(host, limits.allowed_peers):
            self.events.note("http_peer_refused", host)
            return False
        if self.per_peer[host] >= limits.max_connections_per_peer:
            self.events.note("http_peer_connections_exceeded", host)
            return False
        if len(self.open) >= limits.max_connections:
            idle = next((c for c in self.open if c.idle), None)
            if idle is None:
                self.events.note("http_connections_exceeded", host)
                return False
            self.events.note("http_idle_connection_closed", idle.host)
            idle.close_now()
        self.open[conn] = None
        self.per_peer[host] += 1
        return True

    def release(self, conn: GuardedProtocol) -> None:
        if self.open.pop(conn, False) is None:
            self.per_peer[conn.host] -= 1
            if not self.per_peer[conn.host]:
                del self.per_peer[conn.host]
            self.identities.pop(conn.peer, None)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close_unserved(self) -> None:
        """At shutdown: the connections uvicorn does not know of yet (TLS handshakes)."""
        for conn in [c for c in self.open if not c.served]:
            conn.close_now()
        for task in self.tasks:
            task.cancel()


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol behind the gate; a subclass per source sets ``gate``."""

    gate: ClassVar[Gate]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peer: tuple[str, int] = ("", 0)
        self._raw: asyncio.BaseTransport | None = None
        self.served = False  # handed to uvicorn
        self._early: list[bytes] = []
        self._phase = ""  # "headers", "body", or "" (nothing timed)
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def for_gate(cls, gate: Gate) -> type[GuardedProtocol]:
        return type("GuardedProtocol", (cls,), {"gate": gate})

    @property
    def host(self) -> str:
        return self.peer[0]

    @property
    def idle(self) -> bool:
        """No request in progress: it may be closed to admit another connection."""
        return (
            self._phase == "headers"
            or (self.served and self.cycle is None)
            or (self.cycle is not None and self.cycle.response_complete and self._phase == "")
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        name = transport.get_extra_info("peername")
        self.peer = (str(name[0]), int(name[1])) if isinstance(name, tuple) else ("", 0)
        self._raw = transport
        if not self.gate.admit(self, self.host):
            transport.abort()  # type: ignore[attr-defined]
            return
        self._time("headers")  # the TLS handshake counts as part of the headers
        if self.gate.ssl is None:
            self.served = True
            super().connection_made(transport)  # type: ignore[arg-type]
            return
        transport.pause_reading()  # type: ignore[attr-defined]  # the handshake reads first
        self.gate.spawn(self._handshake(transport))

    async def _handshake(self, raw: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        assert self.gate.ssl is not None
        try:
            wrapped = await loop.start_tls(
                raw,  # type: ignore[arg-type]
                self,
                self.gate.ssl,
                server_side=True,
                ssl_handshake_timeout=self.gate.limits.header_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError):  # connection_lost releases it
            self.gate.events.note("http_tls_refused", self.host)
            raw.close()
            return
        if wrapped is None or raw.is_closing():
            return
        tls = self.gate.limits.tls
        cert = wrapped.get_extra_info("peercert")
        if tls is not None and not tls.subject_allowed(cert):
            self.gate.events.note("http_subject_refused", self.host)
            wrapped.abort()
            return
        if cert:
            self.gate.identities[self.peer] = certificate_identity(cert)
        self.served = True
        super().connection_made(wrapped)
        if self._early:
            early, self._early = b"".join(self._early), []
            self.data_received(early)

    def data_received(self, data: bytes) -> None:
        if not self.served:  # TLS: the request may follow the handshake before _handshake resumes
            self._early.append(data)
            return
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._time("")
        self.gate.release(self)
        if self.served:
            super().connection_lost(exc)

    def close_now(self) -> None:
        self._time("")
        self.gate.release(self)  # at once: its transport calls connection_lost later
        transport = self.transport if self.served else self._raw
        if transport is not None:
            transport.abort()  # type: ignore[attr-defined]

    def _follow(self) -> None:
        """Time what the client owes now: the rest of its headers, or of its body."""
        state = self.conn.their_state
        if state is h11.IDLE:
            phase = "headers" if self.conn.trailing_data[0] or self._phase == "headers" else ""
        elif state is h11.SEND_BODY:
            phase = "body"
        else:
            phase = ""
        if phase != self._phase:
            self._time(phase)

    def _time(self, phase: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = phase
        if phase:
            limits = self.gate.limits
            delay = limits.header_timeout if phase == "headers" else limits.body_timeout
            self._timer = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self._timer = None
        self.gate.events.note(f"http_{self._phase}_timeout", self.host)
        if self._phase == "body" and self.cycle is not None and not self.cycle.response_started:
            self.transport.write(_TIMEOUT_408)
            self.transport.close()  # after the 408 is written
            return
        self.close_now()
