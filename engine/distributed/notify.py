"""Operator actions that put messages back in the pipeline (``dlq replay``, ``identity
resolve``) hand them to the workers at once in a distributed deployment, instead of leaving
them to the workers' sweep (``stale_seconds``). Whether the deployment is distributed is read on
the broker: its work queue exists. Without it, or without a broker, nothing is sent: a single
process takes replayed messages by itself, and the sweep stays the fallback."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from engine.channels.config import WorkSettings
from engine.distributed.broker import Broker, BrokerUnavailable
from engine.distributed.items import work_items
from engine.distributed.rabbit import RabbitBroker


def hand_to_workers(
    settings: WorkSettings, conn: Connection, ids: Sequence[int], broker: Broker | None = None
) -> int:
    """Publish a work item for each message; returns how many were published."""
    if not ids:
        return 0
    items = work_items(conn, ids)
    try:
        session = (broker or RabbitBroker(settings)).open(declare=False)
    except BrokerUnavailable:  # no broker, or no work queue: not a distributed deployment
        return 0
    try:
        return session.publish(items)
    except BrokerUnavailable:
        return 0
    finally:
        session.close()
