"""The AMQP destination against the real RabbitMQ: confirmed persistent publishes, a returned
(unroutable) message retried until a queue is bound, and the same message id on every
attempt."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest

from tests.broker import Broker, connect
from tests.integration.identity_harness import adt, pid
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine

CHANNELS = (
    ENGINE_HEAD
    + """
  - name: forward
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations:
      bus: {{type: amqp, broker: {{url: "{amqp_url}"}}, exchange: {exchange}, routing_key: adt}}
    errors: {{max_attempts: 50, backoff: {{initial_seconds: 0.1, max_seconds: 0.2}}}}
"""
)
PATIENT = pid("IPP1", "279035121518989")


@pytest.fixture
def engine(store_url: str, broker: Broker) -> Iterator[InProcessEngine]:
    exchange = broker.name("adt")
    running = InProcessEngine(CHANNELS, url=store_url, amqp_url=broker.url, exchange=exchange)
    running.exchange = exchange  # type: ignore[attr-defined]
    yield running
    running.stop()


def bind_queue(broker: Broker, exchange: str) -> str:
    queue = broker.name("inbox")
    with connect() as conn:
        channel = conn.channel()
        channel.exchange_declare(exchange, "direct", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, "adt")
    return queue


def take(queue: str, count: int) -> list[tuple[pika.BasicProperties, bytes]]:
    got: list[tuple[pika.BasicProperties, bytes]] = []
    deadline = time.monotonic() + 20
    with connect() as conn:
        channel = conn.channel()
        while len(got) < count and time.monotonic() < deadline:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            got.append((props, body))
    return got


def test_messages_are_published_persistent_and_confirmed(
    engine: InProcessEngine, broker: Broker
) -> None:
    queue = bind_queue(broker, engine.exchange)  # type: ignore[attr-defined]
    messages = [adt("A28", PATIENT, "1"), adt("A08", PATIENT, "2")]
    engine.send(*messages)
    engine.wait_idle()
    assert engine.rows("SELECT state FROM journal_messages ORDER BY id") == [
        ("delivered",),
        ("delivered",),
    ]
    got = take(queue, 2)
    assert [body.decode() for _, body in got] == messages
    props = got[0][0]
    assert (props.delivery_mode, props.message_id, props.content_type) == (
        2,
        "forward:1",
        "application/hl7-v2",
    )


def test_a_returned_message_is_retried_until_a_queue_is_bound(
    engine: InProcessEngine, broker: Broker
) -> None:
    engine.send(adt("A28", PATIENT, "1"), wait=False)
    deadline = time.monotonic() + 10
    while not engine.rows("SELECT id FROM journal_messages WHERE state = 'retrying'"):
        assert time.monotonic() < deadline, "never retried"
        time.sleep(0.05)
    [(code, reason)] = engine.rows("SELECT error_code, error_reason FROM journal_messages")
    assert code == "destination_unavailable" and "returned unroutable" in str(reason)
    queue = bind_queue(broker, engine.exchange)  # type: ignore[attr-defined]
    engine.wait_idle()
    assert engine.rows("SELECT state FROM journal_messages") == [("delivered",)]
    assert [p.message_id for p, _ in take(queue, 1)] == ["forward:1"]
