"""The work queue between intake and the workers, behind one small interface.

Intake publishes the work items of each commit (:mod:`engine.distributed.publisher`); workers
receive them in batches, acknowledge a batch once its transaction committed, and give it back
(requeued) when it failed (:mod:`engine.distributed.consumer`). A delivery neither acknowledged
nor given back when its session ends (a worker killed) goes to another worker: at least once.

Two implementations: RabbitMQ (:mod:`engine.distributed.rabbit`, quorum queue, persistent
messages, publisher confirms) and an in-memory twin (:mod:`engine.distributed.memory_broker`),
so that distributed-pipeline tests run without sockets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.distributed.items import WorkItem


class BrokerUnavailable(Exception):
    """The broker cannot be reached, or the session was lost (the reason: one word)."""


class NoWorkQueue(BrokerUnavailable):
    """The broker runs no work queue: not a distributed deployment."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A received work item: its tag (acknowledged or given back) and its body."""

    tag: int
    body: bytes


class WorkSession(Protocol):
    """One open session on the work queue."""

    def publish(self, items: Sequence[WorkItem]) -> int:
        """Put items on the queue, durable once this returns; how many."""
        ...

    def receive(self, limit: int, idle_seconds: float) -> list[Delivery]:
        """Up to ``limit`` deliveries: returns when it has them, or once ``idle_seconds``
        pass without a new one (then maybe none)."""
        ...

    def ack(self, tag: int) -> None:
        """Done with every delivery up to ``tag``."""
        ...

    def nack(self, tag: int) -> None:
        """Give back every delivery up to ``tag``, requeued for any worker."""
        ...

    def keep_alive(self) -> None:
        """Answer the broker's heartbeats while idle."""
        ...

    def close(self) -> None:
        """End the session; deliveries not acknowledged go back to the queue."""
        ...


class Broker(Protocol):
    """Opens sessions on the work queue."""

    #: Where the broker is, for logs (no credentials).
    where: str

    def open(self, *, consume: bool = False, declare: bool = True) -> WorkSession:
        """A session that publishes, and receives with ``consume``. ``declare``: create the
        queue if need be; else :class:`NoWorkQueue` when there is none."""
        ...
