"""The distributed runner's intake side (``--role intake``): after each journal commit, the new
messages' work items go to RabbitMQ (persistent, confirmed), from a thread of their own so that
a slow or absent broker never delays an ACK; worker processes run the pipeline
(:mod:`engine.distributed.consumer`). Items that cannot be published are dropped with a
warning: their messages stay journaled, and the workers' sweep takes them after
``stale_seconds``."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence

import structlog

from engine.channels.config import WorkSettings
from engine.distributed.broker import Broker, BrokerUnavailable, WorkSession
from engine.distributed.items import WorkItem, items_of
from engine.distributed.rabbit import RabbitBroker
from engine.intake.sink import Result
from engine.journal.records import NewMessage
from engine.pipeline.runner import DRAIN_SECONDS, RunnerBase

log = structlog.get_logger("engine.distributed")
_STOP = None


class WorkPublisher(RunnerBase):
    """A :class:`~engine.pipeline.runner.PipelineRunner` whose pipeline runs on the workers:
    new pipelines come with a worker's restart, and operators' replays reach the workers by
    :mod:`engine.distributed.notify`."""

    def __init__(self, settings: WorkSettings, broker: Broker | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.broker = broker or RabbitBroker(settings)
        self._items: queue.SimpleQueue[list[WorkItem] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="work-publisher", daemon=True)
        self._session: WorkSession | None = None
        self._retry_at = 0.0
        self._outage = 0  # items dropped since the broker went away
        self._delay = 1.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        self._items.put(_STOP)
        self._thread.join(10)

    def committed(self, rows: Sequence[NewMessage], results: Sequence[Result]) -> None:
        """Queue the work items of one intake commit."""
        items = items_of(rows, results)
        if items:
            self._items.put(items)

    def _run(self) -> None:
        idle = max(self.settings.broker.heartbeat_seconds / 2, 1.0)
        while True:
            try:
                batch = self._items.get(timeout=idle)
            except queue.Empty:
                self._heartbeat()  # a blocking connection answers heartbeats only when used
                continue
            if batch is _STOP:
                break
            while True:  # whatever queued meanwhile goes in the same confirm round
                try:
                    more = self._items.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._items.put(_STOP)
                    break
                batch.extend(more)
            self._publish(batch)
        self._close()

    def _publish(self, items: list[WorkItem]) -> None:
        if time.monotonic() < self._retry_at:
            self._drop(items, "broker unavailable")
            return
        try:
            reused = self._session is not None
            try:
                self._open().publish(items)
            except BrokerUnavailable:
                if not reused:
                    raise
                self._close()  # the broker dropped an idle connection: once more, anew
                self._open().publish(items)
            self._delay = 1.0
            if self._outage:
                log.info("work_publisher_recovered", dropped=self._outage)
                self._outage = 0
        except BrokerUnavailable as exc:
            self._close()
            self._retry_at = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, 30.0)
            self._drop(items, str(exc))

    def _heartbeat(self) -> None:
        if self._session is not None:
            try:
                self._session.keep_alive()
            except BrokerUnavailable:
                self._close()

    def _drop(self, items: list[WorkItem], reason: str) -> None:
        """Said once per outage (then counted until the broker is back)."""
        if not self._outage:
            log.warning(
                "work_items_not_published",
                reason=reason,
                broker=self.broker.where,
                taken_by=f"the workers' sweep, after stale_seconds={self.settings.stale_seconds}",
            )
        self._outage += len(items)

    def _open(self) -> WorkSession:
        if self._session is None:
            self._session = self.broker.open()
            log.info("work_publisher_connected", broker=self.broker.where)
        return self._session

    def _close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()
