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

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel

from engine.channels.amqp_settings import close_quietly
from engine.channels.config import WorkSettings
from engine.distributed.items import WorkItem, items_of
from engine.distributed.topology import declare_work_queue, publish_items
from engine.intake.sink import Result
from engine.journal.records import NewMessage
from engine.pipeline.runner import DRAIN_SECONDS, RunnerBase

log = structlog.get_logger("engine.distributed")
_STOP = None


class WorkPublisher(RunnerBase):
    """A :class:`~engine.pipeline.runner.PipelineRunner` whose pipeline runs on the workers:
    new pipelines come with a worker's restart, and operators' replays reach the workers by
    :mod:`engine.distributed.notify`."""

    def __init__(self, settings: WorkSettings) -> None:
        super().__init__()
        self.settings = settings
        self._items: queue.SimpleQueue[list[WorkItem] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="work-publisher", daemon=True)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
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
            try:
                self._send(items)
            except (pika.exceptions.StreamLostError, pika.exceptions.ConnectionClosed):
                self._close()  # the broker dropped an idle connection: once more, anew
                self._send(items)
            self._delay = 1.0
            if self._outage:
                log.info("work_publisher_recovered", dropped=self._outage)
                self._outage = 0
        except (pika.exceptions.AMQPError, OSError, ValueError) as exc:
            self._close()
            self._retry_at = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, 30.0)
            self._drop(items, f"{type(exc).__name__}")

    def _send(self, items: list[WorkItem]) -> None:
        publish_items(self._open(), self.settings, items)

    def _heartbeat(self) -> None:
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.process_data_events(0)
            except (pika.exceptions.AMQPError, OSError):
                self._close()

    def _drop(self, items: list[WorkItem], reason: str) -> None:
        """Said once per outage (then counted until the broker is back)."""
        if not self._outage:
            log.warning(
                "work_items_not_published",
                reason=reason,
                broker=self.settings.broker.safe_url(),
                taken_by=f"the workers' sweep, after stale_seconds={self.settings.stale_seconds}",
            )
        self._outage += len(items)

    def _open(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._close()
        self._connection = pika.BlockingConnection(self.settings.broker.parameters())
        channel = self._connection.channel()
        channel.confirm_delivery()
        declare_work_queue(channel, self.settings)
        self._channel = channel
        log.info("work_publisher_connected", broker=self.settings.broker.safe_url())
        return channel

    def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        close_quietly(connection)
