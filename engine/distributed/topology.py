"""The work queue both roles declare (identically: a second declaration is a no-op), and how
work items are put on it."""

from __future__ import annotations

from collections.abc import Iterable

import pika
from pika.adapters.blocking_connection import BlockingChannel

from engine.channels.config import WorkSettings
from engine.distributed.items import WorkItem

QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}


def declare_work_queue(channel: BlockingChannel, settings: WorkSettings) -> None:
    channel.queue_declare(settings.queue, durable=True, arguments=QUEUE_ARGUMENTS)


def publish_items(
    channel: BlockingChannel, settings: WorkSettings, items: Iterable[WorkItem]
) -> int:
    """Put items on the work queue, persistent (confirmed when the channel confirms)."""
    props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    count = 0
    for item in items:
        channel.basic_publish("", settings.queue, item.encode(), props)
        count += 1
    return count
