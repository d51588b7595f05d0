"""The in-memory twin of the work queue: the same interface as RabbitMQ's
(:class:`~engine.distributed.broker.Broker`), in this process, for tests without sockets.

One queue shared by every session, served in publish order; a delivery is out until its
session acknowledges it, gives it back (requeued at the head, in order, as RabbitMQ does), or
closes (a worker killed: the same). ``down()`` stands for a broker away: sessions are lost and
new ones refused until ``up()``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence

from engine.distributed.broker import BrokerUnavailable, Delivery, NoWorkQueue
from engine.distributed.items import ITEMS_PER_BODY, WorkItem, pack, unpack


class MemoryBroker:
    where = "memory"

    def __init__(self, declared: bool = False, per_body: int = ITEMS_PER_BODY) -> None:
        self.cond = threading.Condition()
        #: Items packed in one body, as RabbitMQ's sessions pack a worker's batch.
        self.per_body = per_body
        self.ready: deque[bytes] = deque()
        self.declared = declared
        self.running = True
        #: Items published, acknowledged, and given back or redelivered, over the broker's life
        #: (a delivery is a body of items, see :func:`~engine.distributed.items.pack`).
        self.published = self.acked = self.requeued = 0
        self._tags = itertools.count(1)
        self._sessions: list[MemorySession] = []

    def open(self, *, consume: bool = False, declare: bool = True) -> MemorySession:
        with self.cond:
            if not self.running:
                raise BrokerUnavailable("ConnectionRefused")
            if declare:
                self.declared = True
            elif not self.declared:
                raise NoWorkQueue("work")
            session = MemorySession(self)
            self._sessions.append(session)
            return session

    def down(self) -> None:
        """The broker goes away: every session is lost (its deliveries come back)."""
        with self.cond:
            self.running = False
            for session in list(self._sessions):
                session.lost()
            self.cond.notify_all()

    def up(self) -> None:
        with self.cond:
            self.running = True

    def depth(self) -> int:
        """Items waiting in the queue (not out to a session)."""
        with self.cond:
            return _items(self.ready)

    def _tag(self) -> int:
        return next(self._tags)

    def _requeue(self, bodies: list[bytes]) -> None:
        self.ready.extendleft(reversed(bodies))
        self.requeued += _items(bodies)
        self.cond.notify_all()

    def _closed(self, session: MemorySession) -> None:
        if session in self._sessions:
            self._sessions.remove(session)


class MemorySession:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.out: dict[int, bytes] = {}  # delivered, not acknowledged, by tag (in order)
        self.open = True

    def publish(self, items: Sequence[WorkItem]) -> int:
        with self.broker.cond:
            self._check()
            self.broker.ready.extend(pack(items, self.broker.per_body))
            self.broker.published += len(items)
            self.broker.cond.notify_all()
        return len(items)

    def receive(self, limit: int, idle_seconds: float) -> list[Delivery]:
        got: list[Delivery] = []
        broker = self.broker
        with broker.cond:
            while len(got) < limit:
                self._check()
                if not broker.ready:
                    deadline = time.monotonic() + idle_seconds
                    while not broker.ready and self.open and time.monotonic() < deadline:
                        broker.cond.wait(max(deadline - time.monotonic(), 0))
                    self._check()
                    if not broker.ready:
                        break
                tag = broker._tag()
                body = broker.ready.popleft()
                self.out[tag] = body
                got.append(Delivery(tag, body))
        return got

    def ack(self, tag: int) -> None:
        with self.broker.cond:
            self._check()
            done = [self.out.pop(t) for t in list(self.out) if t <= tag]
            self.broker.acked += _items(done)

    def nack(self, tag: int) -> None:
        with self.broker.cond:
            self._check()
            back = [t for t in self.out if t <= tag]
            self.broker._requeue([self.out.pop(t) for t in back])

    def keep_alive(self) -> None:
        with self.broker.cond:
            self._check()

    def close(self) -> None:
        with self.broker.cond:
            if self.open:
                self.lost()

    def lost(self) -> None:
        """The session ends (caller holds the broker's lock): what is out comes back."""
        self.open = False
        self.broker._requeue(list(self.out.values()))
        self.out.clear()
        self.broker._closed(self)

    def _check(self) -> None:
        if not self.open:
            raise BrokerUnavailable("ConnectionLost")


def _items(bodies: Iterable[bytes]) -> int:
    return sum(len(unpack(body)) for body in bodies)
