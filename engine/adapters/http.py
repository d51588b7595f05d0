"""HTTP source: ``POST`` a CDA document (or an HL7 v2 message) as the request body.

The answer comes after the journal commit, like an MLLP ACK: ``202`` with the journal id for
an accepted payload, ``200`` for a resend of one already journaled, ``422`` with the reason for
a refused one (kept as a dead letter), ``413`` for an oversized body (its head kept as a dead
letter), ``503`` when the journal cannot store it (nothing kept: send again). With
``answer_after: processing`` the answer waits for the pipeline: ``200`` stored, ``422`` refused
there (schema, CI-SIS, INS) with the reason, ``403`` for a replacement or deletion of a document
another sender filed, ``202`` kept waiting (its patient, a review).

Refused before anything is journaled: ``401`` without a valid sender token (``auth: token``, the
default) or client certificate (``auth: mtls``), ``415`` for a media type that is not the
payload's, ``400`` for an empty body, ``429`` (with ``Retry-After``) while a peer whose refused
payloads went over its ``junk`` budget is cut off. Connections are guarded before any byte is
read (:mod:`engine.adapters.http_guard`): allowed peers, connection caps, TLS, header and body
timeouts. uvicorn serves it on the engine's event loop, without API documentation.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from collections.abc import Iterator

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from engine.adapters.http_answers import (
    answered,
    media_type_accepted,
    refusal,
    too_many,
    unauthorized,
)
from engine.adapters.http_auth import Authenticator, TokenCache
from engine.adapters.http_guard import Gate, GuardedProtocol, GuardLimits
from engine.adapters.http_log import BurstLog
from engine.channels.sources import HttpSourceConfig
from engine.errors import MessageTooLarge
from engine.intake.inbox import Inbox
from engine.metrics import ACK_LATENCY
from engine.security.abuse import PeerBudget

log = structlog.get_logger("engine.http")

#: The head of an oversized body kept as its dead letter.
HEAD_MAX = 64 * 1024


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the engine's loop owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpSource:
    def __init__(self, config: HttpSourceConfig, inbox: Inbox):
        self.config = config
        self.inbox = inbox
        self.events = BurstLog(inbox.channel)
        limits = GuardLimits(
            max_connections=config.max_connections,
            max_connections_per_peer=config.max_connections_per_peer,
            header_timeout=config.header_timeout_seconds,
            body_timeout=config.body_timeout_seconds,
            allowed_peers=config.allowed_peers,
            tls=config.tls,
        )
        self.gate = Gate(limits, self.events)
        self.budget = PeerBudget(config.junk)
        self.tokens = (
            TokenCache(inbox.committer.writer.engine, inbox.channel)
            if config.auth == "token"
            else None
        )
        self.auth = Authenticator(config.auth, self.tokens, self.gate.identities)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None

    @property
    def refusals(self) -> Counter[str]:
        """What was refused before anything was journaled, by kind (connections, requests)."""
        return self.events.counts

    def app(self) -> Starlette:
        return Starlette(routes=[Route(self.config.path, self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        host, port = (request.client.host, request.client.port) if request.client else ("", 0)
        sender = await self.auth.identify(request)
        if sender is None:
            self.events.note("http_unauthorized", host)
            return unauthorized()
        if not media_type_accepted(request.headers.get("content-type"), self.config.payload):
            self.events.note("http_unsupported_media_type", host)
            return refusal(415, "unsupported_media_type", f"not a {self.config.payload} media type")
        if (wait := self.budget.blocked_for(host)) > 0:
            self.events.note("http_over_junk_budget", host)
            return too_many(wait)
        try:
            body = await self._read(request)
        except ClientDisconnect:  # the client left, or the guard cut a late body (408 sent)
            self.events.note("http_body_incomplete", host)
            return Response(status_code=408)
        started = time.perf_counter()
        response = await self._receive(body, host, f"{host}:{port}", sender)
        ACK_LATENCY.labels(self.inbox.channel).observe(time.perf_counter() - started)
        return response

    async def _read(self, request: Request) -> bytearray:
        """The body, or its first ``max_message_bytes + 1`` bytes when it is longer."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.config.max_message_bytes:
                break
        return body

    async def _receive(self, body: bytearray, host: str, peer: str, sender: str) -> Response:
        limit = self.config.max_message_bytes
        if len(body) > limit:
            self.budget.charge(host, HEAD_MAX)
            refused = MessageTooLarge(f"body exceeds the {limit:,}-byte limit")
            head = bytes(body[:HEAD_MAX])
            outcome = await self.inbox.submit(head, peer, sender, refused)
            return answered(outcome, 413, close=True)  # the rest of the body is not read
        if not body:
            self.budget.charge(host, 0)
            self.events.note("http_empty_body", host)
            return refusal(400, "empty_body", "the request has no body")
        payload = bytes(body)
        del body
        size = len(payload)
        outcome = await self.inbox.submit(payload, peer, sender)
        del payload
        if outcome.status == "rejected":
            # Journaled within the peer's budget; past it the peer gets 429 for a backoff.
            self.budget.charge(host, size)
        return answered(outcome)

    async def start(self) -> None:
        # Bound here, so that a port in use is an OSError for the engine (uvicorn would exit).
        sock = socket.create_server((self.config.host, self.config.port), reuse_port=False)
        port = sock.getsockname()[1]
        if self.config.tls is not None:
            self.gate.ssl = self.config.tls.context()
        if self.tokens is not None:
            await self.tokens.refresh()
            self._refresher = asyncio.create_task(self.tokens.keep_fresh())
        config = uvicorn.Config(
            self.app(),
            http=GuardedProtocol.for_gate(self.gate),
            timeout_keep_alive=self.config.keepalive_timeout_seconds,  # type: ignore[arg-type]
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            # asyncio accepts up to ``backlog`` sockets per wake-up before any is admitted or
            # refused: a small one keeps a burst of connections from outrunning the caps.
            backlog=min(128, self.config.max_connections),
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        log.info(
            "http_listening",
            channel=self.inbox.channel,
            port=port,
            auth=self.config.auth,
            tls=self.config.tls is not None,
        )

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        self.gate.close_unserved()
        await self._task
