"""``--role console``: the admin listener alone (console, API, ``/metrics``, health), reading
the database the intake and workers share. It runs no channel: channel states are unknown
there and channel control answers 501 (control goes to the intake's admin listener)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from engine.admin.server import AdminServer
from engine.channels.config import ChannelsFile
from engine.db import database_url, make_engine
from engine.runtime.listeners import Reservation
from engine.runtime.threads import DaemonExecutor

log = structlog.get_logger("engine")


async def serve_console(config: ChannelsFile, reservation: Reservation | None = None) -> None:
    """Until SIGTERM or SIGINT. The database need not be up: ``/readyz`` says why not."""
    reservation = reservation or Reservation.take(config)
    settings = config.engine
    db = make_engine(database_url(settings.database_url), durability=settings.durability)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(DaemonExecutor())  # a frozen database never holds the exit
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = AdminServer(config, db)
    try:
        await server.start()
    finally:
        reservation.release()
    log.info("engine_started", role="console", admin_port=server.port)
    await stop.wait()
    log.info("engine_stopping")
    await server.stop()
    db.dispose()
    log.info("engine_stopped", role="console")
