"""The work queue both roles declare (identically: a second declaration is a no-op), and how
work items are put on it."""

from __future__ import annotations

from collections.abc import Sequence

import pika
from pika.adapters.blocking_connection import BlockingChannel

from engine.channels.config import WorkSettings
from engine.distributed.items import WorkItem, pack

QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}


def declare_work_queue(channel: BlockingChannel, settings: WorkSettings) -> None:
    channel.queue_declare(settings.queue, durable=True, arguments=QUEUE_ARGUMENTS)


def publish_items(
    channel: BlockingChannel, settings: WorkSettings, items: Sequence[WorkItem]
) -> int:
    """Put items on the work queue, persistent, packed up to a worker's batch a message: a
    confirming channel waits for the broker once per message, not once per item."""
    props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    for body in pack(items, settings.batch):
        channel.basic_publish("", settings.queue, body, props)
    return len(items)
