"""The pipeline in the writer thread, between intake commits (``engine.pipeline: thread``).

SQLite allows one writer at a time: here one thread does every write, intake first (see
:mod:`engine.pipeline.writer`), then one short slice of pipeline work, cut short as soon as an
intake batch waits. While the database is out the pipeline rests between tries
(``PIPELINE_REST``); intake does not wait behind it.

A channel's pipeline can be replaced while the engine runs (restart, reload): the replacement is
queued and applied in the writer thread, between two batches, so no batch ever sees a pipeline
change under it. A removed channel's messages are no longer claimed: they stay in the journal,
in their state, for an operator to see.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future

import structlog
from sqlalchemy.exc import SQLAlchemyError

from engine.channels.config import ChannelConfig, ChannelsFile, EngineSettings
from engine.database_state import DatabaseState
from engine.logs import error_fields
from engine.pipeline.outbox_sender import OutboxSender
from engine.pipeline.pipeline import Pipeline
from engine.pipeline.runner import DRAIN_SECONDS, Changes, RunnerBase, done_future
from engine.pipeline.worker import Worker

log = structlog.get_logger("engine.writer")

#: Seconds the pipeline rests after a database error (intake goes on meanwhile).
PIPELINE_REST = 1.0

#: Builds a channel's pipeline (given by the runtime, which knows the destinations).
PipelineFactory = Callable[[ChannelConfig, EngineSettings], Pipeline]
_Swap = tuple[Mapping[str, Pipeline | None], Future[None]]


class ThreadRunner(RunnerBase):
    def __init__(
        self,
        worker: Worker,
        build: PipelineFactory | None = None,
        state: DatabaseState | None = None,
    ) -> None:
        super().__init__()
        self.worker = worker
        self.build = build
        self.state = state or DatabaseState(worker.engine.url.render_as_string())
        self._swaps: queue.SimpleQueue[_Swap] = queue.SimpleQueue()
        self._wake_writer: Callable[[], None] = lambda: None
        #: Monotonic time before which the pipeline rests (after a database error).
        self._rests_until = 0.0

    def attach(self, wake_writer: Callable[[], None]) -> None:
        self._wake_writer = wake_writer

    def wake(self) -> None:
        self._wake_writer()

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Release what the destinations hold (the writer drained the pipeline first)."""
        self.worker.close()

    def replace(self, config: ChannelsFile, changes: Changes) -> Future[None]:
        """Queue the new pipelines; the future is done once the writer thread applied them."""
        if not changes:
            return done_future()
        if self.build is None:
            raise RuntimeError("this runner was built without a pipeline factory")
        build = self.build
        built = {
            name: None if channel is None else build(channel, config.engine)
            for name, channel in changes.items()
        }
        done: Future[None] = Future()
        self._swaps.put((built, done))
        self.wake()
        return done

    def run_slice(self, interrupt: Callable[[], bool]) -> int:
        self._apply_swaps()
        if time.monotonic() < self._rests_until:
            return 0
        try:
            done = self.worker.run_once(interrupt=interrupt)
        except SQLAlchemyError as exc:
            if not self.state.failed(exc, "pipeline"):
                log.error("pipeline_database_error", **error_fields(exc))
        except Exception as exc:  # the writer must outlive any bug, or every sender would hang
            log.error("writer_internal_error", **error_fields(exc))
        else:
            self.state.succeeded()
            return done
        self._rests_until = time.monotonic() + PIPELINE_REST
        return 0

    def _apply_swaps(self) -> None:
        worker = self.worker
        while not self._swaps.empty():
            changes, done = self._swaps.get()
            replaced = []
            for name, pipeline in changes.items():
                old = worker.pipelines.pop(name, None)  # the same dict the claims read
                if old is not None:
                    replaced.append(old)
                if pipeline is not None:
                    worker.pipelines[name] = pipeline
            worker.outbox = OutboxSender(worker.engine, worker.pipelines, worker.write_lock)
            for old in replaced:
                try:
                    old.close()
                except Exception as exc:  # a destination's close must not stop the pipeline
                    log.error("pipeline_close_failed", **error_fields(exc))
            done.set_result(None)
