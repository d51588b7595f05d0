"""Memory destination: the in-memory twin of the destinations, for tests and dry runs.

``{type: memory, box: NAME}`` keeps every delivery in :func:`box` ``NAME`` of this process, in
order. A test scripts the answers of the next writes (:meth:`MemoryBox.fail_next`): a transient
failure (retried, like a peer that is down) or a refusal (dead-lettered, like an MLLP ``AR``),
so that pipeline tests need no socket and no peer process.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from engine.channels.destinations import MemoryDestinationConfig
from engine.errors import DestinationRejected, DestinationUnavailable
from engine.pipeline.delivery import BuildContext, Delivery

Failure = Literal["unavailable", "rejected"]


@dataclass(frozen=True, slots=True)
class Kept:
    """What the destination received: enough to check order, content and kind."""

    message_id: int
    channel: str
    raw: bytes
    kind: str
    sender: str


@dataclass
class MemoryBox:
    """The deliveries of one memory destination, and the failures scripted for it."""

    kept: list[Kept] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *failures: Failure) -> None:
        """The next writes fail, one failure each, in this order; then writes succeed."""
        with self.lock:
            self.failures.extend(failures)

    def take(self, delivery: Delivery) -> None:
        with self.lock:
            self.attempts += 1
            failure = self.failures.popleft() if self.failures else None
            if failure is None:
                self.kept.append(
                    Kept(
                        delivery.message_id,
                        delivery.channel,
                        delivery.raw,
                        delivery.kind,
                        delivery.sender,
                    )
                )
        if failure == "unavailable":
            raise DestinationUnavailable("memory destination scripted as unavailable")
        if failure == "rejected":
            raise DestinationRejected("memory destination scripted to refuse")


_BOXES: dict[str, MemoryBox] = {}
_BOXES_LOCK = threading.Lock()


def box(name: str) -> MemoryBox:
    """The box ``name`` of this process (made empty on first use)."""
    with _BOXES_LOCK:
        return _BOXES.setdefault(name, MemoryBox())


def drop_box(name: str) -> None:
    """Forget box ``name`` (a test's teardown)."""
    with _BOXES_LOCK:
        _BOXES.pop(name, None)


def build(config: MemoryDestinationConfig, name: str, context: BuildContext) -> MemoryDestination:
    del context  # nothing deployment-wide applies to memory
    return MemoryDestination(name, box(config.box))


class MemoryDestination:
    transactional = False

    def __init__(self, name: str, target: MemoryBox) -> None:
        self.name = name
        self.target = target

    def close(self) -> None:
        """Nothing held open; the box outlives the engine for the test to read."""

    def write(self, delivery: Delivery) -> None:
        self.target.take(delivery)
