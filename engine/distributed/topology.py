"""The work queue both roles declare (identically: a second declaration is a no-op)."""

from __future__ import annotations

from engine.adapters.amqp_topology import Queue, Topology
from engine.channels.models import WorkSettings


def work_topology(settings: WorkSettings) -> Topology:
    return Topology(queues=(Queue(settings.queue, {"x-queue-type": "quorum"}),))


def declare_work_queue(channel: object, settings: WorkSettings) -> None:
    """On a pika BlockingChannel."""
    for queue in work_topology(settings).queues:
        channel.queue_declare(queue.name, durable=True, arguments=queue.arguments)  # type: ignore[attr-defined]
