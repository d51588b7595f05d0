"""MLLP source: an asyncio server that journals each message before it acknowledges it, through
the channel's inbox (which checks each frame, on the loop or off it by size, and journals it).

The connection itself is in ``mllp_connection``, who may connect in ``mllp_limits``, TLS in
``mllp_tls`` and the framing in ``mllp_framing``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter

import structlog

from engine.adapters.mllp_connection import MllpConnection
from engine.adapters.mllp_limits import Admission
from engine.channels.sources import MllpSourceConfig
from engine.intake.inbox import Inbox

log = structlog.get_logger("engine.mllp")


class MllpServer:
    """One listening socket of a channel."""

    def __init__(self, config: MllpSourceConfig, inbox: Inbox) -> None:
        self.config = config
        self.inbox = inbox
        #: Connections refused, evicted, cut off, frames refused...: for the operations API.
        self.counters: Counter[str] = Counter()
        self.admission = Admission(config, inbox.channel, self.counters)
        #: Bytes of unfinished frames held by all connections.
        self.buffered = 0
        self.tls_context: ssl.SSLContext | None = None
        self._server: asyncio.Server | None = None

    @property
    def connections(self) -> list[MllpConnection]:
        return [c for c in self.admission.connections if isinstance(c, MllpConnection)]

    async def start(self) -> None:
        if self.config.tls is not None:
            self.tls_context = self.config.tls.context()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: MllpConnection(self), self.config.host, self.config.port, reuse_address=True
        )
        log.info(
            "mllp_listening",
            channel=self.inbox.channel,
            port=self.bound_port,
            tls=self.tls_context is not None,
        )

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight messages get their ACK, then close connections."""
        if self._server is None:
            return
        # Answers may wait for the pipeline (answer_after: processing, or MSH-16 asking for an
        # application ACK): up to answer_timeout_seconds. Without such waits this ends at once.
        grace = max(grace, self.config.answer_timeout_seconds + 1)
        self._server.close()
        deadline = asyncio.get_running_loop().time() + grace
        while any(c.outstanding for c in self.connections):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        for conn in self.connections:
            conn.close("engine_stopping")
        await self._server.wait_closed()
