"""The running engine: database, journal, the channels' sources, the pipeline worker, and the
admin and record listeners (channel control and reload: :mod:`engine.runtime.control`)."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from wsgiref.simple_server import WSGIServer

import structlog
from sqlalchemy.engine import Engine as DbEngine

from engine import heap
from engine import metrics as metrics_module
from engine.adapters.registry import build_destination
from engine.admin.server import admin_server
from engine.alerts.service import AlertService
from engine.channels.config import ChannelConfig, ChannelsFile, EngineSettings
from engine.channels.loader import ConfigError
from engine.database_state import DatabaseState, wait_for_database
from engine.db import database_url, make_engine
from engine.distributed.publisher import WorkPublisher
from engine.intake.committer import GroupCommitter
from engine.intake.inbox import Source
from engine.journal.journal import Journal
from engine.journal.prune_job import PruneJob
from engine.logs import error_fields
from engine.migrate import upgrade
from engine.pipeline.delivery import BuildContext, Destination
from engine.pipeline.pipeline import Pipeline
from engine.pipeline.process_runner import ProcessRunner
from engine.pipeline.runner import PipelineRunner
from engine.pipeline.runner_thread import ThreadRunner
from engine.pipeline.worker import Worker
from engine.pipeline.writer import Writer
from engine.record_api.server import RecordListener
from engine.runtime.control import Channels, ChannelsState
from engine.runtime.listeners import Reservation
from engine.runtime.reload import remove_pid, write_pid
from engine.runtime.threads import DaemonExecutor
from engine.store.encryption import check_keys, use_keyring
from engine.store.retention_job import RetentionJob

log = structlog.get_logger("engine")

SWITCH_INTERVAL = 0.0005
#: How long a restart or reload waits for the runner to switch pipelines.
PIPELINE_SWAP_SECONDS = 30.0


def build_pipeline(channel: ChannelConfig, settings: EngineSettings | None = None) -> Pipeline:
    settings = settings or EngineSettings()
    context = BuildContext(
        accept_test_ins=settings.identity.accept_test_ins,
        document_owner_groups=settings.document_owner_groups,
    )
    destinations: dict[str, Destination] = {
        name: build_destination(name, cfg, context) for name, cfg in channel.destinations.items()
    }
    return Pipeline(channel, destinations)


def build_worker(
    config: ChannelsFile, db: DbEngine, write_lock: AbstractContextManager[Any] | None = None
) -> Worker:
    """The pipeline worker of every enabled channel (module-level: a pipeline process gets it
    pickled by name)."""
    channels = [c for c in config.channels if c.enabled]
    pipelines = {c.name: build_pipeline(c, config.engine) for c in channels}
    return Worker(db, Journal(db), pipelines, write_lock=write_lock)


Role = Literal["all", "intake", "worker"]


def build_runner(
    config: ChannelsFile, role: Role, db: DbEngine, url: str, state: DatabaseState
) -> PipelineRunner:
    """The pipeline runner the configuration asks for, beside this process's intake: on the
    distributed workers (``--role intake``), in a process of its own (``engine.pipeline:
    process``) or in the writer thread (``thread``, the default)."""
    if role == "intake":
        require_shared_database(db, role)
        return WorkPublisher(config.engine.work)
    if config.engine.pipeline == "process":
        return ProcessRunner(config, url, build_worker)
    return ThreadRunner(build_worker(config, db), build_pipeline, state)


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
    #: The channels file, for reloads (None: an engine built from a text cannot reload).
    config_path: Path | None = None
    db: DbEngine = field(init=False)
    journal: Journal = field(init=False)
    runner: PipelineRunner = field(init=False)
    writer: Writer = field(init=False)
    committer: GroupCommitter = field(init=False)

    def __post_init__(self) -> None:
        settings = self.config.engine
        url = database_url(settings.database_url)
        self.db = make_engine(url, durability=settings.durability)
        use_keyring(self.db, settings)  # document bytes sealed at rest (engine.encryption)
        #: Up or down since when, and why: for a readiness probe (the log says it meanwhile).
        self.database_state = DatabaseState(url)
        self.journal = Journal(self.db)
        #: Set by SIGTERM/SIGINT or ``stop``: ends the wait for the database at start.
        self.stop_requested = threading.Event()
        self.started = False
        state = self.database_state
        self.runner = build_runner(self.config, self.role, self.db, url, state)
        #: A distributed intake's runner, whose broker connection health reports.
        self.publisher = self.runner if isinstance(self.runner, WorkPublisher) else None
        self.writer = Writer(
            self.db, self.journal, self.runner, state, pipeline_share=settings.pipeline_share
        )
        self.committer = GroupCommitter(self.writer, commit_timeout=settings.commit_timeout_seconds)
        self.channels = Channels(self)
        control = ChannelsState(self.channels)
        self.admin = admin_server(self.config, self.db, control, self.channels)
        self.record: RecordListener | None = None
        if settings.record_api is not None:
            self.record = RecordListener(settings.record_api, self.db)
        self.alerts = AlertService(self.config, self.db, self.channels)
        #: The daily retention purge: in intake processes only (a lease picks one of them).
        self.retention = RetentionJob(settings.retention, self.db, settings.timezone)
        #: Journal pruning (engine.journal_retention): intake processes only, one by lease.
        self.prune = PruneJob(self.config, self.db)

    @property
    def servers(self) -> list[Source]:
        """The channels' started sources, in the configuration's order."""
        return self.channels.sources()

    async def start(self, reservation: Reservation | None = None) -> None:
        """Reserve every port (a port in use raises :class:`ListenersUnavailable` before any
        opens), open the admin listener, wait until the journal is writable (migrated), then
        open every channel's listener, the record listener and start the worker (which
        resumes unfinished work). Until then no channel listens: a sender's connection is
        refused, as when the engine is down. Returns without starting when a stop is
        requested while it waits; on a failure, what started is stopped and it raises."""
        reservation = reservation or Reservation.take(self.config)
        try:
            await self._start(reservation)
        except BaseException:
            reservation.release()
            await self.stop()
            raise
        reservation.release()

    async def _start(self, reservation: Reservation) -> None:
        if self.admin is not None:  # /healthz answers, /readyz says why not ready yet
            await self.admin.start()
            reservation.release("the admin listener")
        ready = await asyncio.to_thread(
            wait_for_database,
            self.db,
            self.database_state,
            lambda: upgrade(self.db),
            self.stop_requested,
        )
        if not ready:
            return
        await asyncio.to_thread(check_keys, self.db)  # every sealed row's key in hand
        self.runner.start()
        self.writer.start()
        self.started = True
        await self.channels.start_all(reservation)
        if self.record is not None:
            await self.record.start()
        await asyncio.to_thread(self.alerts.start)
        await asyncio.to_thread(self.retention.start)
        await asyncio.to_thread(self.prune.start)
        write_pid(self.config_path)
        log.info("engine_started", role=self.role, channels=list(self.channels.runners))

    async def replace_pipelines(
        self, changes: Mapping[str, ChannelConfig | None], config: ChannelsFile | None = None
    ) -> None:
        """Rebuild (or drop, for None) the pipelines of the channels named, where this process
        runs them; ``config``: the configuration they come from, once reloaded."""
        config = config or self.config
        # A pipeline process restarts (blocking); distributed workers take a new file when
        # restarted (nothing to wait for); the writer thread switches between two batches.
        done = await asyncio.to_thread(self.runner.replace, config, changes)
        try:
            await asyncio.wait_for(asyncio.wrap_future(done), PIPELINE_SWAP_SECONDS)
        except TimeoutError:  # the writer rests (database out): it applies them after
            log.warning("pipelines_replaced_later", channels=sorted(changes))

    async def adopt(self, config: ChannelsFile) -> None:
        """Take a reloaded configuration as the running one (channels already switched)."""
        self.config = config
        if self.admin is not None:
            self.admin.context.config = config
        old, self.alerts = self.alerts, AlertService(config, self.db, self.channels)
        if self.started:  # off the loop: stopping waits for a check in progress
            await asyncio.to_thread(old.stop)
            await asyncio.to_thread(self.alerts.start)
        retention = config.engine.retention
        await asyncio.to_thread(self.retention.reschedule, retention, config.engine.timezone)
        await asyncio.to_thread(self.prune.reschedule, config)

    async def stop(self) -> None:
        """Stop accepting, ACK what is in flight, drain the pipeline, close the database.
        Whatever the database's state: nothing here waits on it without a limit."""
        log.info("engine_stopping")
        self.stop_requested.set()
        await self.channels.stop_all()
        if self.record is not None:
            await self.record.stop()
        await asyncio.to_thread(self.alerts.stop)
        await asyncio.to_thread(self.retention.stop)
        await asyncio.to_thread(self.prune.stop)
        if self.started:
            self.committer.flush()
            await asyncio.to_thread(self.writer.stop)
            await asyncio.to_thread(self.runner.stop)
        if self.admin is not None:
            await self.admin.stop()
        remove_pid(self.config_path)
        self.db.dispose()
        log.info("engine_stopped")

    async def serve(self, reservation: Reservation | None = None) -> None:
        """Run until SIGTERM or SIGINT; SIGHUP reloads the channels file."""
        # The event loop answers senders while the writer thread computes: a shorter GIL switch
        # interval (default 5 ms) keeps the loop from waiting a whole slice for every ACK.
        sys.setswitchinterval(SWITCH_INTERVAL)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.set_default_executor(DaemonExecutor())  # a frozen database never holds the exit

        def request_stop() -> None:
            stop.set()
            self.stop_requested.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, request_stop)
        reloads: set[asyncio.Task[None]] = set()

        def request_reload() -> None:
            task = loop.create_task(self._reload_on_signal())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, request_reload)
        await self.start(reservation)
        heap.settle()  # what startup built is never walked by the collector again
        await stop.wait()
        await self.stop()

    async def _reload_on_signal(self) -> None:
        if not self.started:
            log.warning("reload_ignored", reason="the engine is not started yet")
            return
        try:
            await self.channels.reload()
        except ConfigError as exc:
            log.error("reload_refused", issues=[str(i) for i in exc.issues])
        except Exception as exc:  # said in the log and the outcome file; the engine runs on
            log.error("reload_failed", **error_fields(exc))


def worker_metrics(settings: EngineSettings) -> WSGIServer | None:
    """The worker's own /metrics, when ``engine.admin.worker_metrics_port`` is set."""
    admin = settings.admin
    if admin is None or admin.worker_metrics_port is None:
        return None
    server = metrics_module.serve(admin.host, admin.worker_metrics_port)
    log.info("worker_metrics_listening", port=admin.worker_metrics_port)
    return server


def run_worker(config: ChannelsFile) -> None:
    """``--role worker``: consume work items until SIGTERM or SIGINT."""
    from engine.distributed.consumer import DistributedWorker

    settings = config.engine
    url = database_url(settings.database_url)
    db = make_engine(url, durability=settings.durability)
    use_keyring(db, settings)
    require_shared_database(db, "worker")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if not wait_for_database(db, DatabaseState(url), lambda: upgrade(db), stop):
            return
        check_keys(db)
        metrics = worker_metrics(settings)
        heap.settle()
        log.info("engine_started", role="worker", channels=[c.name for c in config.channels])
        try:
            DistributedWorker(config, db, build_worker(config, db)).run(stop)
        finally:
            if metrics is not None:
                metrics.shutdown()
    finally:
        db.dispose()
        log.info("engine_stopped", role="worker")
