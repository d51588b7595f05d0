"""AMQP destination: publish each message to a RabbitMQ exchange, persistent, ``mandatory``,
with publisher confirms. A destination is delivered only once the broker confirmed it; a
returned (unroutable) or refused (nack) message, or a lost connection, is a transient error:
the pipeline retries it with the channel's backoff, then dead-letters it.

The message id (``<channel>:<journal id>``) is the same on every attempt, so that a consumer can
recognise a message published twice (after a confirm lost with the connection).
"""

from __future__ import annotations

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel

from engine.cda.standalone import CdaPayload
from engine.channels.amqp_settings import close_quietly
from engine.channels.destinations import AmqpDestinationConfig
from engine.errors import DestinationUnavailable
from engine.pipeline.delivery import BuildContext, Delivery

log = structlog.get_logger("engine.amqp")


def build(config: AmqpDestinationConfig, name: str, context: BuildContext) -> AmqpDestination:
    del context  # a broker needs no deployment setting
    return AmqpDestination(name, config)


class AmqpDestination:
    transactional = False

    def __init__(self, name: str, config: AmqpDestinationConfig) -> None:
        self.name = name
        self.config = config
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def write(self, delivery: Delivery) -> None:
        cfg = self.config
        where = f"{cfg.broker.safe_url()} exchange {cfg.exchange or '(default)'!r}"
        content_type = (
            "application/xml"
            if isinstance(delivery.message, CdaPayload)
            else ("application/hl7-v2")
        )
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type=content_type,
            message_id=f"{delivery.channel}:{delivery.message_id}",
            type=f"{delivery.message.message_type}^{delivery.message.trigger}",
            headers={"aiguillage-channel": delivery.channel, "aiguillage-kind": delivery.kind},
        )

        def publish() -> None:
            self._open().basic_publish(
                cfg.exchange, cfg.routing_key, delivery.raw, properties, mandatory=True
            )

        try:
            try:
                publish()
            except (pika.exceptions.StreamLostError, pika.exceptions.ConnectionClosed):
                # An idle blocking connection misses heartbeats and gets dropped by the broker:
                # once more on a new one (the message id is the same: a consumer can tell).
                self.close()
                publish()
        except pika.exceptions.UnroutableError as exc:
            raise DestinationUnavailable(
                f"{where}: returned unroutable (no queue bound for key {cfg.routing_key!r})"
            ) from exc
        except pika.exceptions.NackError as exc:
            raise DestinationUnavailable(f"{where}: the broker refused it (nack)") from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.close()
            raise DestinationUnavailable(f"{where}: {type(exc).__name__}: {exc}"[:300]) from exc
        except ValueError as exc:  # an unreadable URL from the environment: never quote it
            raise DestinationUnavailable(f"{where}: broker settings unreadable") from exc

    def _open(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self.close()
        self._connection = pika.BlockingConnection(self.config.broker.parameters())
        channel = self._connection.channel()
        channel.confirm_delivery()
        if self.config.exchange and self.config.declare_exchange:
            channel.exchange_declare(self.config.exchange, self.config.exchange_type, durable=True)
        self._channel = channel
        return channel

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        close_quietly(connection)
