"""The pipeline in a process of its own, beside the process that receives and journals.

Python runs one thread at a time per process: with intake and pipeline in one process they share
one core whatever the machine has. Here the pipeline worker gets its own interpreter (and core);
the two meet only in the database. SQLite lets one of them write at a time, so the intake side
raises a shared flag while it waits to commit and the pipeline ends its transaction early, after
``MIN_SLICE`` messages (senders wait for their ACK; the journal can wait a few milliseconds).

The pipeline process exits when its parent disappears (even on SIGKILL), so that a restarted
engine never finds an orphan working beside its new pipeline. It takes a new configuration by a
restart: it drains what it holds (the journal keeps the rest for the new one), then starts anew
with the same wake-up, flag and lock the writer holds.

The runtime gives the worker factory (a module-level function, pickled by name for the spawned
process): the pipeline package knows no destination.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from engine import logs
from engine.channels.config import ChannelsFile
from engine.db import make_engine
from engine.heap import settle as settle_heap
from engine.intake.sink import Result
from engine.journal.records import NewMessage
from engine.pipeline.runner import DRAIN_SECONDS, Changes, RunnerBase, done_future
from engine.pipeline.worker import Worker
from engine.store.encryption import use_keyring

log = structlog.get_logger("engine.pipeline")

_CONTEXT = multiprocessing.get_context("spawn")

#: Builds the pipeline worker of a configuration's enabled channels on a database, with the
#: write lock both processes share: a module-level function (it is pickled by name).
WorkerFactory = Callable[[ChannelsFile, Engine, AbstractContextManager[Any]], Worker]


class ProcessRunner(RunnerBase):
    def __init__(self, config: ChannelsFile, url: str, build_worker: WorkerFactory) -> None:
        super().__init__()
        self.config_json = config.model_dump_json(by_alias=True)
        self.url = url
        self.build_worker = build_worker
        self.wakeup = _CONTEXT.Event()
        self.stopping = _CONTEXT.Event()
        #: Set by intake while it waits to commit: the pipeline then ends its slice early.
        self.waiting: Synchronized[int] = _CONTEXT.Value("i", 0)
        #: Taken around every write transaction by both processes: SQLite has one writer, and
        #: its busy handler sleeps (1, 2, 5... ms) where a lock hands over at once.
        self.write_lock = _CONTEXT.Lock()
        self.process: Any = None

    def start(self) -> None:
        self.process = _CONTEXT.Process(
            target=run,
            args=(
                self.config_json,
                self.url,
                self.build_worker,
                self.wakeup,
                self.stopping,
                self.waiting,
                self.write_lock,
                os.getpid(),
            ),
            name="aiguillage-pipeline",
            daemon=False,
        )
        self.process.start()
        log.info("pipeline_process_started", pid=self.process.pid)

    def wake(self) -> None:
        self.wakeup.set()

    def intake_waiting(self, waiting: bool) -> None:
        self.waiting.value = int(waiting)

    def committed(self, rows: Sequence[NewMessage], results: Sequence[Result]) -> None:
        self.wakeup.set()

    def replace(self, config: ChannelsFile, changes: Changes) -> Future[None]:
        """Restart the process on ``config`` (blocking: up to the drain of a stop)."""
        if changes:
            self.stop()
            self.stopping.clear()
            self.config_json = config.model_dump_json(by_alias=True)
            self.start()
        return done_future()

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Ask the pipeline to finish what is journaled (up to ``drain_seconds``) and exit."""
        if self.process is None:
            return
        self.stopping.set()
        self.wakeup.set()
        self.process.join(drain_seconds + 5)
        if self.process.is_alive():
            log.error("pipeline_process_kill", pid=self.process.pid)
            self.process.kill()
            self.process.join()


def run(
    config_json: str,
    url: str,
    build_worker: WorkerFactory,
    wake: Any,
    stopping: Any,
    intake_waiting: Synchronized[int],
    write_lock: Any,
    parent: int,
    drain_seconds: float = DRAIN_SECONDS,
) -> None:
    """Entry point of the pipeline process."""
    # Ctrl-C reaches the whole process group: the parent decides when this process stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    config = ChannelsFile.model_validate_json(config_json)
    logs.configure(config.engine.log_level, config.engine.log_patient_data)
    db = make_engine(url, durability=config.engine.durability)
    use_keyring(db, config.engine)  # the keyring the parent checked at start
    worker = build_worker(config, db, write_lock)
    # On its own core: what needs no database runs before the write lock is taken.
    worker.prepares_ahead = True
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    settle_heap()

    def interrupt() -> bool:
        return bool(intake_waiting.value)

    deadline: float | None = None
    try:
        while os.getppid() == parent:
            if stopping.is_set():
                deadline = deadline or time.monotonic() + drain_seconds
                if time.monotonic() > deadline or not worker.has_due_work():
                    break
            try:
                done = worker.run_once(interrupt=interrupt)
            except Exception as exc:  # keep going: a bug must not stop the pipeline
                log.error("pipeline_error", **logs.error_fields(exc))
                done = 0
                time.sleep(1.0)
            if done == 0 and not stopping.is_set():
                wake.wait(0.5)
                wake.clear()
    finally:
        worker.close()
        db.dispose()
        log.info("pipeline_process_stopped", processed=worker.processed)


def _exit_with_parent(parent: int) -> None:
    """End this process as soon as its parent is gone, whatever it is waiting on.

    A parent killed (SIGKILL) while holding a lock shared with this process (the write lock,
    the lock inside a shared Event or Value) never releases it, and a wait on it would keep
    this process alive beside the restarted engine. Exiting at once is safe: an unfinished
    transaction is rolled back by the database, and its messages stay journaled.
    """
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)
