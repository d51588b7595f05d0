"""How the pipeline runs beside intake: one interface, three implementations.

The runtime picks one from the configuration (:func:`engine.runtime.wiring.build_runner`):

* in the writer thread, between intake commits (:class:`~engine.pipeline.runner_thread.
  ThreadRunner`, ``engine.pipeline: thread``, the embedded default);
* in a process of its own beside the receiving one (:class:`~engine.pipeline.process_runner.
  ProcessRunner`, ``engine.pipeline: process``);
* on distributed workers fed through RabbitMQ (``--role intake``: :class:`~engine.distributed.
  publisher.WorkPublisher` hands each commit's messages to the workers, which run
  :class:`~engine.distributed.consumer.DistributedWorker`).

Each drives the same :class:`~engine.pipeline.worker.Worker` (one claim, one batch loop). The
writer thread (:class:`~engine.pipeline.writer.Writer`) owns the database connection that
intake commits through and tells its runner about each commit; the runner says what the
thread does between commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from engine.channels.config import ChannelConfig, ChannelsFile
from engine.intake.sink import Result
from engine.journal.records import NewMessage

#: Channel name -> its new configuration, or None to stop taking the channel's messages.
Changes = Mapping[str, ChannelConfig | None]
#: Seconds a stop lets the pipeline finish what is journaled.
DRAIN_SECONDS = 10.0


class PipelineRunner(Protocol):
    """Runs the pipeline over what intake journals."""

    #: Held by the writer thread around each intake commit.
    write_lock: AbstractContextManager[Any]

    def start(self) -> None:
        """Start taking journaled messages (unfinished ones first: they resume)."""
        ...

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Finish what is journaled (up to ``drain_seconds``), then release what it holds."""
        ...

    def wake(self) -> None:
        """Journal rows changed outside intake (an operator's replay): look for work now."""
        ...

    def replace(self, config: ChannelsFile, changes: Changes) -> Future[None]:
        """Take ``config``'s new pipelines for the channels named; done once they run."""
        ...

    # -- the writer thread's side ---------------------------------------------------------

    def attach(self, wake_writer: Callable[[], None]) -> None:
        """The writer thread's wake-up, for a runner that works in that thread."""
        ...

    def intake_waiting(self, waiting: bool) -> None:
        """Intake batches wait for their commit (True) or none does any more (False)."""
        ...

    def committed(self, rows: Sequence[NewMessage], results: Sequence[Result]) -> None:
        """Told after each intake commit, in the writer thread."""
        ...

    def run_slice(self, interrupt: Callable[[], bool]) -> int:
        """Pipeline work in the writer thread between commits: messages handled (0 when the
        pipeline runs elsewhere, or has nothing due). ``interrupt`` says intake waits."""
        ...


class RunnerBase:
    """What a runner does with each member of :class:`PipelineRunner` it leaves alone:
    nothing."""

    def __init__(self) -> None:
        self.write_lock: AbstractContextManager[Any] = nullcontext()

    def start(self) -> None:
        pass

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        pass

    def wake(self) -> None:
        pass

    def replace(self, config: ChannelsFile, changes: Changes) -> Future[None]:
        return done_future()

    def attach(self, wake_writer: Callable[[], None]) -> None:
        pass

    def intake_waiting(self, waiting: bool) -> None:
        pass

    def committed(self, rows: Sequence[NewMessage], results: Sequence[Result]) -> None:
        pass

    def run_slice(self, interrupt: Callable[[], bool]) -> int:
        return 0


def done_future() -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done
