"""A pipeline worker whose channels can be replaced while the engine runs (restart, reload).

The worker runs in the writer thread; a replacement is queued and applied there, between two
batches, so no batch ever sees a pipeline change under it. A removed channel's messages are
no longer claimed: they stay in the journal, in their state, for an operator to see.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Mapping
from concurrent.futures import Future

import structlog

from engine.channels.config import ChannelsFile
from engine.logs import error_fields
from engine.pipeline.outbox_sender import OutboxSender
from engine.pipeline.pipeline import Pipeline
from engine.pipeline.process_runner import PipelineProcess
from engine.pipeline.worker import Worker

log = structlog.get_logger("engine")

#: Channel name -> its new pipeline, or None to stop taking the channel's messages.
Changes = Mapping[str, Pipeline | None]


class SwappableWorker(Worker):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._swaps: queue.SimpleQueue[tuple[Changes, Future[None]]] = queue.SimpleQueue()

    def replace(self, changes: Changes) -> Future[None]:
        """Queue ``changes``; the future is done once the writer thread applied them."""
        done: Future[None] = Future()
        self._swaps.put((changes, done))
        return done

    def run_once(self, interrupt: Callable[[], bool] | None = None) -> int:
        self._apply()
        return super().run_once(interrupt)

    def _apply(self) -> None:
        while not self._swaps.empty():
            changes, done = self._swaps.get()
            replaced = []
            for name, pipeline in changes.items():
                old = self.pipelines.pop(name, None)  # the same dict the claims read
                if old is not None:
                    replaced.append(old)
                if pipeline is not None:
                    self.pipelines[name] = pipeline
            self.outbox = OutboxSender(self.engine, self.pipelines, self.write_lock)
            for old in replaced:
                try:
                    old.close()
                except Exception as exc:  # a destination's close must not stop the pipeline
                    log.error("pipeline_close_failed", **error_fields(exc))
            done.set_result(None)


def restart_process(process: PipelineProcess, config: ChannelsFile) -> None:
    """The pipeline in a process of its own takes a new configuration by a restart: it drains
    what it holds (the journal keeps the rest for the new one), then starts anew with the same
    wake-up, flag and lock the writer holds."""
    process.stop()
    process.stopping.clear()
    process.config_json = config.model_dump_json(by_alias=True)
    process.start()
