"""The RabbitMQ at 127.0.0.1:5672 (guest/guest) for tests: unique names per test, removed
afterwards; skipped only when the broker is absent and CI is unset. Tests never stop or
restart this broker (other consumers use it): those that restart one start their own node
(:mod:`tests.rabbit_private`)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pika
import pika.exceptions
import pytest

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def connect(url: str = AMQP_URL) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


@dataclass
class Broker:
    """A test's corner of the broker: names under ``prefix``, deleted at the end."""

    prefix: str = field(default_factory=lambda: f"test.{uuid.uuid4().hex[:10]}")
    url: str = AMQP_URL
    _queues: set[str] = field(default_factory=set)
    _exchanges: set[str] = field(default_factory=set)

    def name(self, suffix: str) -> str:
        """A queue or exchange name of this test (the dead-letter ones are cleaned too)."""
        full = f"{self.prefix}.{suffix}"
        self._queues.update({full, f"{full}.dead"})
        self._exchanges.update({full, f"{full}.dead"})
        return full

    def publish(self, queue: str, *bodies: bytes, **props: object) -> None:
        """To the default exchange, persistent, with publisher confirms."""
        with connect(self.url) as conn:
            channel = conn.channel()
            channel.confirm_delivery()
            for body in bodies:
                properties = pika.BasicProperties(delivery_mode=2, **props)  # type: ignore[arg-type]
                channel.basic_publish("", queue, body, properties, mandatory=True)

    def depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (declared passively)."""
        with connect(self.url) as conn:
            result = conn.channel().queue_declare(queue, passive=True)
            return int(result.method.message_count)

    def wait_depth(self, queue: str, expected: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.depth(queue) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"{queue}: {self.depth(queue)} messages, not {expected}")
            time.sleep(0.05)

    def cleanup(self) -> None:
        with connect(self.url) as conn:
            channel = conn.channel()
            for queue in self._queues:
                try:
                    channel.queue_delete(queue)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = conn.channel()
            for exchange in self._exchanges:
                try:
                    channel.exchange_delete(exchange)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = conn.channel()


def broker_or_skip() -> None:
    try:
        connect().close()
    except pika.exceptions.AMQPConnectionError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ at 127.0.0.1:5672 unreachable and CI is set: {exc!r}")
        pytest.skip("RabbitMQ at 127.0.0.1:5672 unreachable (and CI unset)")


@pytest.fixture
def broker() -> Iterator[Broker]:
    broker_or_skip()
    corner = Broker()
    try:
        yield corner
    finally:
        corner.cleanup()
