"""The worker role: consume work items, run the pipeline, write the record store.

Items arrive in any order and on any worker: the order of each patient's messages comes from
the journal instead (contract 4). A batch of items is one transaction that takes the advisory
locks of their groups (a channel's patient, or a message alone), then processes every pending
message of each group up to the item, oldest first, row-locked. Two workers never run the same
patient at once, and a message already ended is skipped: an item delivered twice, or after its
message was processed through an earlier item, changes nothing (contract 3). Items are
acknowledged after the commit: a worker killed mid-batch loses its transaction, and its
unacknowledged items go to another worker.

A periodic sweep takes what no item brings: retries that fell due, and messages journaled while
the broker was away (or replayed by an operator) once they are ``stale_seconds`` old.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from engine.channels.amqp_settings import close_quietly
from engine.channels.config import ChannelsFile, WorkSettings
from engine.distributed.items import WorkItem, work_items
from engine.distributed.topology import declare_work_queue, publish_items
from engine.journal.claim import WHOLE_GROUP, Group, stale_or_due
from engine.journal.journal import utcnow
from engine.logs import error_fields
from engine.pipeline.worker import Worker

log = structlog.get_logger("engine.distributed")
IDLE_SECONDS = 0.002
SWEEP_LIMIT = 1000
#: The pause after a batch whose every patient another worker held.
BUSY_PAUSE = 0.05


class DistributedWorker:
    def __init__(self, config: ChannelsFile, db: Engine, worker: Worker) -> None:
        self.settings: WorkSettings = config.engine.work
        self.db = db
        self.worker = worker
        self._last_sweep = 0.0

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; without a broker, sweep and retry the connection."""
        delay = 1.0
        where = self.settings.broker.safe_url()
        while not stop.is_set():
            try:
                connection = pika.BlockingConnection(self.settings.broker.parameters())
            except (pika.exceptions.AMQPError, OSError, ValueError) as exc:
                log.warning(
                    "amqp_waiting_for_broker",
                    role="worker",
                    broker=where,
                    reason=type(exc).__name__,
                    retry_in=delay,
                )
                self._idle(stop, delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            try:
                channel = connection.channel()
                declare_work_queue(channel, self.settings)
                channel.basic_qos(prefetch_count=self.settings.prefetch)
                log.info("worker_consuming", broker=where, queue=self.settings.queue)
                self._consume(channel, stop)
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning(
                    "amqp_connection_lost", role="worker", broker=where, reason=type(exc).__name__
                )
            finally:
                close_quietly(connection)
        self.worker.close()

    def _idle(self, stop: threading.Event, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            self._sweep_if_due(None)
            stop.wait(min(self.settings.sweep_seconds, max(deadline - time.monotonic(), 0)))

    def _consume(self, channel: BlockingChannel, stop: threading.Event) -> None:
        tags: list[int] = []
        items: list[WorkItem] = []
        for method, _props, body in channel.consume(
            self.settings.queue, inactivity_timeout=IDLE_SECONDS
        ):
            if method is not None:
                tags.append(method.delivery_tag)
                try:
                    items.append(WorkItem.decode(body))
                except ValueError:
                    log.error("work_item_unreadable", size=len(body))
                if len(tags) < self.settings.batch:
                    continue
            if tags:
                try:
                    self.run_items(channel, items)
                except SQLAlchemyError as exc:  # the database is away: give the items back
                    log.error("work_batch_failed", error=type(exc).__name__, items=len(tags))
                    channel.basic_nack(tags[-1], multiple=True, requeue=True)
                    stop.wait(1.0)
                except Exception as exc:  # a bug: give them back (the broker's count grows)
                    log.error("work_batch_failed", items=len(tags), **error_fields(exc))
                    channel.basic_nack(tags[-1], multiple=True, requeue=True)
                    stop.wait(1.0)
                else:
                    channel.basic_ack(tags[-1], multiple=True)
                tags, items = [], []
            self._sweep_if_due(channel)
            if stop.is_set():
                break
        channel.cancel()

    def run_items(self, channel: BlockingChannel | None, items: list[WorkItem]) -> None:
        upto: dict[Group, int] = {}
        for item in items:
            if item.channel not in self.worker.pipelines:
                log.error("work_item_for_unknown_channel", message_id=item.id)
                continue
            upto[item.group] = max(item.last, upto.get(item.group, 0))
        if not upto:
            return
        ran = self.worker.run(upto)
        again = [i for i in items if i.group in ran.busy]  # another worker has that patient
        if ran.busy and len(ran.busy) == len(upto):
            time.sleep(BUSY_PAUSE)  # only patients held elsewhere: do not spin on them
        if ran.released:  # their messages first, then again every group of this batch
            again = self._items_of(ran.released) + items
        if not again:
            return
        if channel is not None:
            publish_items(channel, self.settings, again)
        elif ran.released:  # the sweep: released messages now; busy groups at the next sweep
            self.run_items(None, self._items_of(ran.released))

    def _items_of(self, ids: list[int]) -> list[WorkItem]:
        with self.db.connect() as conn:
            return work_items(conn, ids)

    def _sweep_if_due(self, channel: BlockingChannel | None) -> None:
        if time.monotonic() - self._last_sweep < self.settings.sweep_seconds:
            return
        self._last_sweep = time.monotonic()
        self.sweep(channel)

    def sweep(self, channel: BlockingChannel | None) -> None:
        """Process the groups no work item will bring (new items go to ``channel`` if any)."""
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.stale_seconds)
        try:
            with self.db.connect() as conn:
                found = stale_or_due(conn, now, stale, SWEEP_LIMIT, self.worker.pipelines)
            # A whole group: the retry that fell due, and the patient's messages behind it.
            items = [
                WorkItem(g.id, g.channel, g.patient_key, WHOLE_GROUP if g.patient_key else g.id)
                for g in found
            ]
            for start in range(0, len(items), self.settings.batch):
                self.run_items(channel, items[start : start + self.settings.batch])
            self.worker.outbox.flush()  # business acknowledgements due for a retry
        except Exception as exc:  # the next sweep tries again; a bug must not stop the worker
            log.error("sweep_failed", **error_fields(exc))
