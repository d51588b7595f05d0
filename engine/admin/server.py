"""The admin listener on the engine's event loop (uvicorn, without its signal handlers).

The runtime starts it after its channels::

    self.admin = admin_server(self.config, self.db, state, control)   # None when not configured
    await self.admin.start() ...  await self.admin.stop()

It keeps the journal figures fresh in the background, so that a scrape or a dashboard refresh
reads a snapshot instead of counting.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from sqlalchemy.engine import Engine

from engine.admin.app import create_app
from engine.admin.context import AdminContext
from engine.admin.state import ChannelControl, EngineState
from engine.channels.config import ChannelsFile

log = structlog.get_logger("engine.admin")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    def __init__(
        self,
        config: ChannelsFile,
        db: Engine,
        state: EngineState | None = None,
        control: ChannelControl | None = None,
    ) -> None:
        self.context = AdminContext.build(config, db, state, control)
        self.settings = self.context.settings
        self.port = self.settings.port
        self._server: _Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Bind (an OSError names a port in use), then serve on the running loop."""
        sock = socket.create_server((self.settings.host, self.settings.port))
        # Accepted sockets inherit it: without it, a keep-alive request waits 40 ms for the
        # client's delayed ACK between the response's header and body segments (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = sock.getsockname()[1]
        tls = self.settings.tls
        config = uvicorn.Config(
            create_app(self.context),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            ssl_certfile=str(tls.cert_file) if tls else None,
            ssl_keyfile=str(tls.key_file) if tls else None,
            ssl_ca_certs=str(tls.client_ca_file) if tls and tls.client_ca_file else None,
        )
        self._server = _Server(config)
        serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        self._tasks = [serving, asyncio.create_task(self._keep_figures_fresh())]
        while not self._server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        log.info("admin_listening", host=self.settings.host, port=self.port)

    async def _keep_figures_fresh(self) -> None:
        figures = self.context.figures
        while True:
            try:
                await asyncio.to_thread(figures.refresh)
            except Exception as exc:  # the next round tries again; /readyz reports the database
                log.warning("admin_figures_failed", error=type(exc).__name__)
            await asyncio.sleep(figures.age_allowed / 2)  # fresh before readers find it old

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        refresher = self._tasks[1:] if self._tasks else []
        for task in refresher:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.context.reader is not self.context.db:
            self.context.reader.dispose()
        log.info("admin_stopped")


def admin_server(
    config: ChannelsFile,
    db: Engine,
    state: EngineState | None = None,
    control: ChannelControl | None = None,
) -> AdminServer | None:
    """The admin server the configuration asks for (``engine.admin``), not started yet."""
    if config.engine.admin is None:
        return None
    return AdminServer(config, db, state, control)
