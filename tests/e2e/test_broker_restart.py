"""A private RabbitMQ node (tests/rabbit_private.py: its own name, ports and data directory;
the machine's broker is never touched) restarted during a flow: the AMQP
source reconnects and resumes, and every message published (with confirms, resent by the
publisher until confirmed) is journaled exactly once and delivered."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pika
import pika.exceptions
import pytest

from engine.channels.amqp_settings import close_quietly
from tests.broker import Broker
from tests.e2e.hl7_messages import PATIENTS, oru
from tests.e2e.mllp_client import register_patients
from tests.integration.inprocess import ADT_CHANNEL, ENGINE_HEAD, InProcessEngine
from tests.rabbit_private import PrivateRabbit, private_rabbit_fixture  # noqa: F401

TOTAL = 2_000
RESTART_AFTER = 500

pytestmark = pytest.mark.slow

CHANNELS = (
    ENGINE_HEAD
    + ADT_CHANNEL
    + """  - name: lab
    source:
      type: amqp
      broker: {{url: "{amqp_url}", url_env: AIGUILLAGE_TEST_NO_SUCH_VARIABLE}}
      queue: {queue}
      reconnect_initial_seconds: 0.2
      reconnect_max_seconds: 1
    accept: ["ORU^R01"]
    destinations: {{store: {{type: record_store}}}}
"""
)


class Publisher(threading.Thread):
    """Publishes ORU 0..TOTAL-1 with confirms; resends a message until it is confirmed."""

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(daemon=True)
        self.url, self.queue = url, queue
        self.confirmed = 0
        self.failures = 0

    def run(self) -> None:
        n = 0
        connection = None
        while n < TOTAL:
            try:
                if connection is None:
                    connection = pika.BlockingConnection(pika.URLParameters(self.url))
                    channel = connection.channel()
                    channel.confirm_delivery()
                props = pika.BasicProperties(delivery_mode=2)
                channel.basic_publish("", self.queue, oru(n), props, mandatory=True)
                n += 1
                self.confirmed = n
            except (pika.exceptions.AMQPError, OSError):
                self.failures += 1
                close_quietly(connection)
                connection = None
                time.sleep(0.2)
        close_quietly(connection)


def test_the_source_reconnects_after_a_broker_restart_and_loses_nothing(
    tmp_path: Path, private_rabbit: PrivateRabbit
) -> None:
    broker = Broker(url=private_rabbit.url)
    queue = broker.name("lab")
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    engine = InProcessEngine(CHANNELS, url=url, amqp_url=broker.url, queue=queue)
    try:
        register_patients(engine.port)
        source = engine.engine.servers[1]
        deadline = time.monotonic() + 20
        while not source.connected.is_set():  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the AMQP source never connected"
            time.sleep(0.05)
        publisher = Publisher(broker.url, queue)
        publisher.start()
        while publisher.confirmed < RESTART_AFTER:
            time.sleep(0.01)
        private_rabbit.restart()
        publisher.join(timeout=180)
        assert publisher.confirmed == TOTAL and publisher.failures >= 1
        deadline = time.monotonic() + 120
        query = "SELECT count(DISTINCT control_id) FROM journal_messages WHERE channel = 'lab'"
        while engine.rows(query)[0][0] < TOTAL and time.monotonic() < deadline:
            time.sleep(0.1)
        engine.wait_idle()
        rows = engine.rows(
            "SELECT count(*), count(DISTINCT control_id), "
            "sum(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END) "
            "FROM journal_messages WHERE channel = 'lab'"
        )
        # A message published but unconfirmed when the broker went down may be published
        # again: the journal recognises the resend (same MSH-10), and applies it once.
        assert rows == [(TOTAL, TOTAL, TOTAL)]
        assert engine.rows("SELECT count(*) FROM store_observations") == [(TOTAL * 2,)]
        assert engine.rows("SELECT count(*) FROM journal_messages WHERE channel = 'adt'") == [
            (PATIENTS,)
        ]
    finally:
        engine.stop()
