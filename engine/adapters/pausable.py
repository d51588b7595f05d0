"""Sources an operator can pause without closing their listener (channel control).

- MLLP: the listening socket stays bound but is no longer accepted from (new senders wait in
  the kernel's backlog), and open connections stop being read (their senders wait for the
  ACK); in-flight messages still get theirs. Resume takes both up again.
- HTTP: every request is answered 503 with ``Retry-After`` while the listener stays open.

Other sources (directory, AMQP) are paused by stopping them: polling ends, the consumer is
cancelled (unacknowledged deliveries go back to the queue); resume starts a fresh one.

The registry (:mod:`engine.adapters.registry`) builds every MLLP and HTTP source as one of
these; channel control (:mod:`engine.runtime.control`) pauses and resumes them.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.adapters.http import HttpSource
from engine.adapters.http_answers import refusal
from engine.adapters.mllp import MllpServer

#: The reason an MLLP connection stops being read (beside its own flow-control reasons).
OPERATOR_PAUSE = "operator_paused"
#: What a paused HTTP source tells senders to wait before they try again.
RETRY_AFTER_SECONDS = 30


class PausableMllpServer(MllpServer):
    paused = False

    def pause(self) -> None:
        server = self._server
        if server is None or self.paused:
            return
        self.paused = True
        loop = asyncio.get_running_loop()
        for sock in server.sockets:
            loop.remove_reader(sock.fileno())  # no accept: connections wait in the backlog
        # asyncio has no public "stop accepting": marked as not serving, ``start_serving``
        # registers the accept again on resume.
        server._serving = False  # type: ignore[attr-defined]
        for conn in self.connections:
            conn._pause(OPERATOR_PAUSE)

    async def resume(self) -> None:
        if self._server is None or not self.paused:
            return
        self.paused = False
        for conn in self.connections:
            conn._resume(OPERATOR_PAUSE)
        await self._server.start_serving()


class _PauseGate:
    """ASGI middleware: 503 with Retry-After while the source is paused."""

    def __init__(self, app: ASGIApp, source: PausableHttpSource) -> None:
        self.app = app
        self.source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.source.paused:
            answer = refusal(
                503,
                "channel_paused",
                "the channel is paused by an operator: send again later",
                **{"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


class PausableHttpSource(HttpSource):
    paused = False

    def app(self) -> Starlette:
        app = super().app()
        app.add_middleware(_PauseGate, source=self)
        return app

    def pause(self) -> None:
        self.paused = True

    async def resume(self) -> None:
        self.paused = False
