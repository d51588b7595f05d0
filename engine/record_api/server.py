"""The record listener: uvicorn on the engine's loop, with TLS when configured. A client
certificate verified against ``tls.client_ca_file`` is kept per connection, so the request's
actor can be the professional whose RPPS its subject carries."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
import uvicorn
from sqlalchemy.engine import Engine as DbEngine
from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.channels.record_api_settings import RecordApiSettings
from engine.record_api.app import create_app
from engine.security.tls import ServerTls

log = structlog.get_logger("engine.record_api")

#: Verified client certificates of open connections, by (client host, client port).
Certificates = dict[tuple[str, int], dict[str, Any]]


def _protocol(certificates: Certificates, tls: ServerTls | None) -> type[H11Protocol]:
    class CertifiedProtocol(H11Protocol):
        """uvicorn's h11 protocol that remembers the connection's client certificate."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Not set on sockets accepted from a listening socket handed to uvicorn: without
                # it every keep-alive answer waited for the client's delayed ACK (40 ms).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)
            cert = transport.get_extra_info("peercert")
            if cert and self.client and tls is not None and tls.subject_allowed(cert):
                certificates[(self.client[0], self.client[1])] = cert

        def connection_lost(self, exc: Exception | None) -> None:
            if self.client:
                certificates.pop((self.client[0], self.client[1]), None)
            super().connection_lost(exc)

    return CertifiedProtocol


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the engine's loop owns SIGTERM and SIGINT."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RecordListener:
    def __init__(self, settings: RecordApiSettings, db: DbEngine) -> None:
        self.settings = settings
        self.certificates: Certificates = {}
        self.app = create_app(db, settings, self.certificates)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = settings.port

    async def start(self) -> None:
        # Bound here, so that a port in use is an OSError for the engine (uvicorn would exit).
        sock = socket.create_server((self.settings.host, self.settings.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            http=_protocol(self.certificates, self.settings.tls),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        config.load()
        if self.settings.tls is not None:
            config.ssl = self.settings.tls.context()
            if self.settings.tls.client_ca_file is not None:
                # Asked, not required: patients and representatives sign in with a token.
                config.ssl.verify_mode = ssl.CERT_OPTIONAL
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        log.info("record_api_listening", port=self.port, tls=self.settings.tls is not None)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
