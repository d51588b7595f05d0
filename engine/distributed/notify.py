"""Operator actions that put messages back in the pipeline (``dlq replay``, ``identity
resolve``) hand them to the workers at once in a distributed deployment, instead of leaving
them to the workers' sweep (``stale_seconds``). Whether the deployment is distributed is read on
the broker: its work queue exists. Without it, or without a broker, nothing is sent: a single
process takes replayed messages by itself, and the sweep stays the fallback."""

from __future__ import annotations

from collections.abc import Sequence

import pika
import pika.exceptions
from sqlalchemy import Connection

from engine.channels.amqp_settings import close_quietly
from engine.channels.config import WorkSettings
from engine.distributed.items import work_items
from engine.distributed.topology import publish_items


def hand_to_workers(settings: WorkSettings, conn: Connection, ids: Sequence[int]) -> int:
    """Publish a work item for each message; returns how many were published."""
    if not ids:
        return 0
    items = work_items(conn, ids)
    try:
        connection = pika.BlockingConnection(settings.broker.parameters())
    except (pika.exceptions.AMQPError, OSError, ValueError):
        return 0
    try:
        channel = connection.channel()
        try:
            channel.queue_declare(settings.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return 0  # no work queue: not a distributed deployment
        channel.confirm_delivery()
        return publish_items(channel, settings, items)
    except (pika.exceptions.AMQPError, OSError):
        return 0
    finally:
        close_quietly(connection)
