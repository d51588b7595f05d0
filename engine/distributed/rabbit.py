"""The work queue on RabbitMQ: a quorum queue, persistent messages, publisher confirms, manual
acknowledgements with a prefetch (:class:`~engine.distributed.broker.Broker` for pika)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from engine.channels.amqp_settings import close_quietly
from engine.channels.config import WorkSettings
from engine.distributed.broker import BrokerUnavailable, Delivery, NoWorkQueue
from engine.distributed.items import WorkItem
from engine.distributed.topology import declare_work_queue, publish_items

#: What pika raises when the broker is away or the connection dropped.
_LOST = (pika.exceptions.AMQPError, OSError, ValueError)


class RabbitBroker:
    def __init__(self, settings: WorkSettings) -> None:
        self.settings = settings
        self.where = settings.broker.safe_url()

    def open(self, *, consume: bool = False, declare: bool = True) -> RabbitSession:
        try:
            connection = pika.BlockingConnection(self.settings.broker.parameters())
        except _LOST as exc:
            raise BrokerUnavailable(type(exc).__name__) from exc
        try:
            channel = connection.channel()
            if declare:
                declare_work_queue(channel, self.settings)
            else:
                try:
                    channel.queue_declare(self.settings.queue, passive=True)
                except pika.exceptions.ChannelClosedByBroker as exc:
                    raise NoWorkQueue(self.settings.queue) from exc
            if consume:
                channel.basic_qos(prefetch_count=self.settings.prefetch)
            else:
                channel.confirm_delivery()
        except BrokerUnavailable:
            close_quietly(connection)
            raise
        except _LOST as exc:
            close_quietly(connection)
            raise BrokerUnavailable(type(exc).__name__) from exc
        return RabbitSession(connection, channel, self.settings)


class RabbitSession:
    def __init__(
        self, connection: pika.BlockingConnection, channel: BlockingChannel, settings: WorkSettings
    ) -> None:
        self.connection = connection
        self.channel = channel
        self.settings = settings
        self._consumer: Iterator[Any] | None = None

    def publish(self, items: Sequence[WorkItem]) -> int:
        try:
            return publish_items(self.channel, self.settings, items)
        except _LOST as exc:
            raise BrokerUnavailable(type(exc).__name__) from exc

    def receive(self, limit: int, idle_seconds: float) -> list[Delivery]:
        got: list[Delivery] = []
        try:
            if self._consumer is None:
                self._consumer = self.channel.consume(
                    self.settings.queue, inactivity_timeout=idle_seconds
                )
            while len(got) < limit:
                method, _props, body = next(self._consumer)
                if method is None:  # idle: what came so far
                    break
                got.append(Delivery(method.delivery_tag, body))
        except _LOST as exc:
            raise BrokerUnavailable(type(exc).__name__) from exc
        return got

    def ack(self, tag: int) -> None:
        try:
            self.channel.basic_ack(tag, multiple=True)
        except _LOST as exc:
            raise BrokerUnavailable(type(exc).__name__) from exc

    def nack(self, tag: int) -> None:
        try:
            self.channel.basic_nack(tag, multiple=True, requeue=True)
        except _LOST as exc:
            raise BrokerUnavailable(type(exc).__name__) from exc

    def keep_alive(self) -> None:
        try:
            self.connection.process_data_events(0)
        except _LOST as exc:
            raise BrokerUnavailable(type(exc).__name__) from exc

    def close(self) -> None:
        # After a lost connection pika's channel is closed and its consumer state gone
        # (cancel() then fails an internal assertion): cancel only on an open channel.
        if self._consumer is not None and self.channel.is_open:
            with contextlib.suppress(*_LOST):
                self.channel.cancel()
        close_quietly(self.connection)
