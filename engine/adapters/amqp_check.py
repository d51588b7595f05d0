"""``aiguillage check``'s look at the broker: does the topology a channels file needs agree with
what RabbitMQ already has? An exchange or queue that exists with another type or other
arguments is a conflict (the engine's declaration would fail with PRECONDITION_FAILED); one
that does not exist yet is created at start. Read-only towards existing objects: each is first
declared passively, and declared for real only when it exists (a no-op when it agrees)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from engine.channels.amqp_settings import AmqpConnection, Exchange, Queue, Topology
from engine.channels.config import ChannelsFile
from engine.channels.destinations import AmqpDestinationConfig
from engine.channels.sources import AmqpSourceConfig

NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class Finding:
    level: Literal["conflict", "absent", "unreachable"]
    channel: str
    message: str


def broker_findings(config: ChannelsFile) -> list[Finding]:
    """Every conflict, absent object and unreachable broker of the file's AMQP channels."""
    findings: list[Finding] = []
    for channel in config.channels:
        if not channel.enabled:
            continue
        needs: list[tuple[AmqpConnection, Topology]] = []
        if isinstance(channel.source, AmqpSourceConfig):
            needs.append((channel.source.broker, channel.source.topology()))
        for dest in channel.destinations.values():
            if isinstance(dest, AmqpDestinationConfig) and dest.exchange and dest.declare_exchange:
                topology = Topology(exchanges=(Exchange(dest.exchange, dest.exchange_type),))
                needs.append((dest.broker, topology))
        for broker, topology in needs:
            findings.extend(_inspect(channel.name, broker, topology))
    return findings


def _inspect(channel: str, broker: AmqpConnection, topology: Topology) -> list[Finding]:
    try:
        conn = pika.BlockingConnection(broker.parameters())
    except (pika.exceptions.AMQPError, OSError, ValueError) as exc:
        reason = f"broker {broker.safe_url()} unreachable ({type(exc).__name__}): not checked"
        return [Finding("unreachable", channel, reason)]
    findings: list[Finding] = []
    try:
        items: list[Exchange | Queue] = [*topology.exchanges, *topology.queues]
        for item in items:
            findings += _one(conn, channel, item)
    finally:
        if conn.is_open:
            conn.close()
    return findings


def _one(conn: pika.BlockingConnection, channel: str, item: Exchange | Queue) -> list[Finding]:
    what = f"{'exchange' if isinstance(item, Exchange) else 'queue'} {item.name!r}"
    try:
        _declare(conn.channel(), item, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            return [Finding("absent", channel, f"{what} does not exist yet: created at start")]
        return [Finding("conflict", channel, f"{what}: {exc.reply_text}")]
    try:
        _declare(conn.channel(), item, passive=False)
    except pika.exceptions.ChannelClosedByBroker as exc:
        return [Finding("conflict", channel, f"{what}: {exc.reply_text}")]
    return []


def _declare(channel: BlockingChannel, item: Exchange | Queue, passive: bool) -> None:
    """As the engine declares it (passive: only whether it exists)."""
    if isinstance(item, Exchange):
        channel.exchange_declare(item.name, item.type, passive=passive, durable=True)
    else:
        channel.queue_declare(item.name, passive=passive, durable=True, arguments=item.arguments)
