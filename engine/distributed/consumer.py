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

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from engine.channels.config import ChannelsFile, WorkSettings
from engine.distributed.broker import Broker, BrokerUnavailable, Delivery, WorkSession
from engine.distributed.items import WorkItem, unpack, work_items
from engine.distributed.rabbit import RabbitBroker
from engine.journal.claim import WHOLE_GROUP, Group, stale_or_due
from engine.journal.journal import utcnow
from engine.logs import error_fields
from engine.pipeline.runner import DRAIN_SECONDS, RunnerBase
from engine.pipeline.worker import Worker

log = structlog.get_logger("engine.distributed")
IDLE_SECONDS = 0.002
SWEEP_LIMIT = 1000
#: The pause after a batch whose every patient another worker held.
BUSY_PAUSE = 0.05


class DistributedWorker(RunnerBase):
    """The distributed runner's worker side: consumes work items and runs the pipeline
    (``--role worker`` runs :meth:`run` in its main thread; :meth:`start` runs it in a
    thread of its own)."""

    def __init__(
        self, config: ChannelsFile, db: Engine, worker: Worker, broker: Broker | None = None
    ) -> None:
        super().__init__()
        self.settings: WorkSettings = config.engine.work
        self.db = db
        self.worker = worker
        self.broker = broker or RabbitBroker(self.settings)
        self._last_sweep = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="work-consumer")
        self._thread.start()

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Stop after the batch in hand (its items are acknowledged or given back)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(drain_seconds)

    def wake(self) -> None:
        self._last_sweep = 0.0  # the next round sweeps

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; without a broker, sweep and retry the connection."""
        delay = 1.0
        where = self.broker.where
        while not stop.is_set():
            try:
                session = self.broker.open(consume=True)
            except BrokerUnavailable as exc:
                log.warning(
                    "amqp_waiting_for_broker",
                    role="worker",
                    broker=where,
                    reason=str(exc),
                    retry_in=delay,
                )
                self._idle(stop, delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            try:
                log.info("worker_consuming", broker=where, queue=self.settings.queue)
                self._consume(session, stop)
            except BrokerUnavailable as exc:
                log.warning("amqp_connection_lost", role="worker", broker=where, reason=str(exc))
            finally:
                self._close(session)
        self.worker.close()

    @staticmethod
    def _close(session: WorkSession) -> None:
        """Close a session whatever state its connection is in: a failure here must not end
        the worker (it reconnects next)."""
        try:
            session.close()
        except Exception as exc:
            log.warning("work_session_close_failed", **error_fields(exc))

    def _idle(self, stop: threading.Event, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            self._sweep_if_due(None)
            stop.wait(min(self.settings.sweep_seconds, max(deadline - time.monotonic(), 0)))

    def _consume(self, session: WorkSession, stop: threading.Event) -> None:
        while not stop.is_set():
            deliveries, items = self._receive(session)
            if deliveries:
                self._run_batch(session, deliveries, items, stop)
            self._sweep_if_due(session)

    def _receive(self, session: WorkSession) -> tuple[list[Delivery], list[WorkItem]]:
        """Deliveries until their items make a batch, or the queue goes idle: a delivery
        carries the items of one intake commit (see :func:`~engine.distributed.items.pack`)."""
        deliveries: list[Delivery] = []
        items: list[WorkItem] = []
        while len(items) < self.settings.batch:
            got = session.receive(1, IDLE_SECONDS)
            if not got:
                break
            deliveries += got
            for delivery in got:
                try:
                    items += unpack(delivery.body)
                except ValueError:
                    log.error("work_item_unreadable", size=len(delivery.body))
        return deliveries, items

    def _run_batch(
        self,
        session: WorkSession,
        deliveries: list[Delivery],
        items: list[WorkItem],
        stop: threading.Event,
    ) -> None:
        """One batch of items in one transaction, acknowledged after its commit; given back
        when it failed."""
        last = deliveries[-1].tag
        try:
            self.run_items(session, items)
        except SQLAlchemyError as exc:  # the database is away: give the items back
            log.error("work_batch_failed", error=type(exc).__name__, items=len(items))
            session.nack(last)
            stop.wait(1.0)
        except BrokerUnavailable:
            raise
        except Exception as exc:  # a bug: give them back (the broker's count grows)
            log.error("work_batch_failed", items=len(items), **error_fields(exc))
            session.nack(last)
            stop.wait(1.0)
        else:
            session.ack(last)

    def run_items(self, session: WorkSession | None, items: list[WorkItem]) -> None:
        """Run the groups of ``items`` (new items go to ``session`` for what must come again:
        groups another worker held, or messages an ADT released)."""
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
        if session is not None:
            session.publish(again)
        elif ran.released:  # the sweep: released messages now; busy groups at the next sweep
            self.run_items(None, self._items_of(ran.released))

    def _items_of(self, ids: list[int]) -> list[WorkItem]:
        with self.db.connect() as conn:
            return work_items(conn, ids)

    def _sweep_if_due(self, session: WorkSession | None) -> None:
        if time.monotonic() - self._last_sweep < self.settings.sweep_seconds:
            return
        self._last_sweep = time.monotonic()
        self.sweep(session)

    def sweep(self, session: WorkSession | None) -> None:
        """Process the groups no work item will bring (new items go to ``session`` if any)."""
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
                self.run_items(session, items[start : start + self.settings.batch])
            self.worker.outbox.flush()  # business acknowledgements due for a retry
        except Exception as exc:  # the next sweep tries again; a bug must not stop the worker
            log.error("sweep_failed", **error_fields(exc))
