"""The running engine: database, journal, MLLP servers and the pipeline worker."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from sqlalchemy.engine import Engine as DbEngine

from engine.adapters.base import BuildContext, Destination, Source
from engine.channels.models import ChannelConfig, ChannelsFile, EngineSettings
from engine.database_state import DatabaseState, wait_for_database
from engine.db import database_url, make_engine
from engine.distributed.publisher import WorkPublisher
from engine.journal.journal import Journal
from engine.migrate import upgrade
from engine.routes.committer import GroupCommitter
from engine.routes.intake import Intake
from engine.routes.pipeline import Pipeline
from engine.routes.pipeline_process import PipelineProcess
from engine.routes.worker import Worker
from engine.routes.writer import Writer

log = structlog.get_logger("engine")

SWITCH_INTERVAL = 0.0005


def build_pipeline(channel: ChannelConfig, settings: EngineSettings | None = None) -> Pipeline:
    settings = settings or EngineSettings()
    context = BuildContext(
        accept_test_ins=settings.identity.accept_test_ins,
        document_owner_groups=settings.document_owner_groups,
    )
    destinations: dict[str, Destination] = {
        name: cfg.build(name, context) for name, cfg in channel.destinations.items()
    }
    return Pipeline(channel, destinations)


def build_worker(
    config: ChannelsFile, db: DbEngine, write_lock: AbstractContextManager[Any] | None = None
) -> Worker:
    """The pipeline worker of every enabled channel."""
    channels = [c for c in config.channels if c.enabled]
    pipelines = {c.name: build_pipeline(c, config.engine) for c in channels}
    return Worker(db, Journal(db), pipelines, write_lock=write_lock)


Role = Literal["all", "intake", "worker"]


def require_shared_database(db: DbEngine, role: Role) -> None:
    """Intake and worker processes share one database: PostgreSQL."""
    if db.dialect.name != "postgresql":
        raise SystemExit(
            f"--role {role} needs a PostgreSQL database shared by every process "
            f"(engine.database_url or AIGUILLAGE_DATABASE_URL); this one is {db.dialect.name}"
        )


@dataclass
class Engine:
    config: ChannelsFile
    role: Role = "all"
    db: DbEngine = field(init=False)
    journal: Journal = field(init=False)
    writer: Writer = field(init=False)
    committer: GroupCommitter = field(init=False)
    servers: list[Source] = field(default_factory=list)

    def __post_init__(self) -> None:
        settings = self.config.engine
        url = database_url(settings.database_url)
        self.db = make_engine(url, durability=settings.durability)
        #: Up or down since when, and why: for a readiness probe (the log says it meanwhile).
        self.database_state = DatabaseState(url)
        self.journal = Journal(self.db)
        self.process: PipelineProcess | None = None
        self.publisher: WorkPublisher | None = None
        #: Set by SIGTERM/SIGINT or ``stop``: ends the wait for the database at start.
        self.stop_requested = threading.Event()
        self.started = False
        state = self.database_state
        if self.role == "intake":  # the pipeline runs in worker processes
            require_shared_database(self.db, self.role)
            self.publisher = WorkPublisher(settings.work)
            self.writer = Writer(
                self.db, self.journal, None, committed=self.publisher.committed, state=state
            )
        elif settings.pipeline == "process":
            self.process = PipelineProcess(self.config, url)
            self.writer = Writer(
                self.db,
                self.journal,
                None,
                self.process.notify,
                self.process.intake_waiting,
                self.process.write_lock,
                state=state,
            )
        else:
            worker = build_worker(self.config, self.db)
            self.writer = Writer(self.db, self.journal, worker, state=state)
        self.committer = GroupCommitter(self.writer, commit_timeout=settings.commit_timeout_seconds)

    async def start(self) -> None:
        """Wait until the journal is writable (migrated), then open every channel's listener
        and start the worker (which resumes unfinished work). Until then no listener is open:
        a sender's connection is refused, as when the engine is down. Returns without starting
        when a stop is requested while it waits."""
        ready = await asyncio.to_thread(
            wait_for_database,
            self.db,
            self.database_state,
            lambda: upgrade(self.db),
            self.stop_requested,
        )
        if not ready:
            return
        if self.process is not None:
            self.process.start()
        if self.publisher is not None:
            self.publisher.start()
        self.writer.start()
        self.started = True
        for channel in self.config.channels:
            if not channel.enabled:
                continue
            server = channel.source.server(Intake.for_channel(channel), self.committer)
            await server.start()
            self.servers.append(server)
        log.info(
            "engine_started", role=self.role, channels=[s.intake.channel for s in self.servers]
        )

    async def stop(self) -> None:
        """Stop accepting, ACK what is in flight, drain the pipeline, close the database.
        Whatever the database's state: nothing here waits on it without a limit."""
        log.info("engine_stopping")
        self.stop_requested.set()
        await asyncio.gather(*(s.stop() for s in self.servers))
        if self.started:
            self.committer.flush()
            await asyncio.to_thread(self.writer.stop)
            if self.publisher is not None:
                await asyncio.to_thread(self.publisher.stop)
            if self.process is not None:
                await asyncio.to_thread(self.process.stop)
        self.db.dispose()
        log.info("engine_stopped")

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT."""
        # The event loop answers senders while the writer thread computes: a shorter GIL switch
        # interval (default 5 ms) keeps the loop from waiting a whole slice for every ACK.
        sys.setswitchinterval(SWITCH_INTERVAL)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def request_stop() -> None:
            stop.set()
            self.stop_requested.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, request_stop)
        await self.start()
        await stop.wait()
        await self.stop()


def run_worker(config: ChannelsFile) -> None:
    """``--role worker``: consume work items until SIGTERM or SIGINT."""
    from engine.distributed.worker import DistributedWorker

    settings = config.engine
    url = database_url(settings.database_url)
    db = make_engine(url, durability=settings.durability)
    require_shared_database(db, "worker")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if not wait_for_database(db, DatabaseState(url), lambda: upgrade(db), stop):
            return
        log.info("engine_started", role="worker", channels=[c.name for c in config.channels])
        DistributedWorker(config, db, build_worker(config, db)).run(stop)
    finally:
        db.dispose()
        log.info("engine_stopped", role="worker")
