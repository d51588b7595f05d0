"""The AMQP source against the real RabbitMQ: journal before acknowledgement, properties kept,
refusals acknowledged as dead letters, poison messages through the broker's dead-letter queue,
the reimbursement feed into the record store, and an engine that runs without its broker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import hl7.client
import pika
import pika.exceptions
import pytest
from sqlalchemy.exc import OperationalError

from engine.intake.rules import MessageRules
from engine.journal.journal import Journal
from tests.broker import Broker
from tests.e2e.engine_process import free_port
from tests.integration.identity_harness import adt, oru, pid
from tests.integration.inprocess import ADT_CHANNEL, ENGINE_HEAD, InProcessEngine
from tests.sample_files import CDA_SAMPLES

INS = "279035121518989"
PATIENT = pid("IPP1", INS)

CHANNELS = (
    ENGINE_HEAD
    + ADT_CHANNEL
    + """  - name: lab_amqp
    source:
      type: amqp
      broker: {{url: "{amqp_url}", url_env: AIGUILLAGE_TEST_NO_SUCH_VARIABLE}}
      queue: {lab_queue}
      delivery_limit: 2
      reconnect_initial_seconds: 0.2
    accept: ["ORU^R01"]
    destinations: {{store: {{type: record_store}}}}
  - name: reimbursements
    source:
      type: amqp
      broker: {{url: "{amqp_url}", url_env: AIGUILLAGE_TEST_NO_SUCH_VARIABLE}}
      queue: {remb_queue}
      exchange: {remb_queue}
      routing_key: cnam-hr
      payload: cda
    accept: ["CDA^REMB"]
    destinations: {{store: {{type: record_store}}}}
"""
)


class AmqpEngine(InProcessEngine):
    def __init__(self, url: str, broker: Broker, amqp_url: str | None = None) -> None:
        self.lab, self.remb = broker.name("lab"), broker.name("remb")
        super().__init__(
            CHANNELS,
            url=url,
            amqp_url=amqp_url or broker.url,
            lab_queue=self.lab,
            remb_queue=self.remb,
        )

    def wait_connected(self) -> None:
        for server in self.engine.servers:
            if hasattr(server, "connected"):
                for _ in range(200):
                    if server.connected.is_set():
                        break
                    time.sleep(0.05)
                else:
                    raise AssertionError(f"{server.inbox.channel}: not connected")

    def wait_rows(self, sql: str, count: int, timeout: float = 20) -> list[tuple[object, ...]]:
        deadline = time.monotonic() + timeout
        while len(rows := self.rows(sql)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(rows)} rows, not {count}: {rows}")
            time.sleep(0.05)
        self.wait_idle()
        return self.rows(sql)

    def admit(self) -> None:
        with hl7.client.MLLPClient("127.0.0.1", self.port) as client:
            client.send_message(adt("A28", PATIENT, "A1"))
        self.wait_idle()


@pytest.fixture
def engine(store_url: str, broker: Broker) -> Iterator[AmqpEngine]:
    running = AmqpEngine(store_url, broker)
    running.wait_connected()
    yield running
    running.stop()


JOURNAL = (
    "SELECT control_id, state, error_code, properties FROM journal_messages "
    "WHERE channel = 'lab_amqp' ORDER BY id"
)


def test_a_result_on_the_queue_is_journaled_with_its_properties_then_acknowledged(
    engine: AmqpEngine, broker: Broker
) -> None:
    engine.admit()
    broker.publish(
        engine.lab,
        oru(PATIENT, "R1").encode(),
        message_id="lab-42",
        correlation_id="order-7",
        headers={"lab": "LABO-1"},
    )
    [(control_id, state, code, properties)] = engine.wait_rows(JOURNAL, 1)
    assert (control_id, state, code) == ("R1", "delivered", None)
    kept = json.loads(str(properties))
    assert (kept["message_id"], kept["correlation_id"], kept["headers"]) == (
        "lab-42",
        "order-7",
        {"lab": "LABO-1"},
    )
    assert engine.rows("SELECT value FROM store_observations") == [("4.2",)]
    broker.wait_depth(engine.lab, 0)


def test_a_refused_message_is_a_dead_letter_and_is_acknowledged_not_redelivered(
    engine: AmqpEngine, broker: Broker
) -> None:
    broker.publish(engine.lab, b"this is not HL7", adt("A08", PATIENT, "X2").encode())
    rows = engine.wait_rows(JOURNAL, 2)
    assert [(r[1], r[2]) for r in rows] == [
        ("dead_lettered", "parse_error"),
        ("dead_lettered", "unsupported_message_type"),
    ]
    broker.wait_depth(engine.lab, 0)
    time.sleep(0.5)  # a redelivery would show as another journal row
    assert len(engine.rows(JOURNAL)) == 2


def test_a_resent_message_is_journaled_once(engine: AmqpEngine, broker: Broker) -> None:
    engine.admit()
    broker.publish(engine.lab, oru(PATIENT, "R9").encode(), oru(PATIENT, "R9").encode())
    broker.wait_depth(engine.lab, 0)
    engine.wait_idle()
    assert [r[:2] for r in engine.rows(JOURNAL)] == [("R9", "delivered")]
    assert engine.rows("SELECT count(*) FROM store_observations") == [(1,)]


def test_a_message_that_crashes_the_consumer_reaches_the_engine_dead_letters(
    engine: AmqpEngine, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = MessageRules.prepare

    def crash(self: MessageRules, payload: bytes, peer: str = "", sender: str = "") -> object:
        if b"POISON" in payload:
            raise RuntimeError("a bug in intake")
        return real(self, payload, peer, sender)

    monkeypatch.setattr(MessageRules, "prepare", crash)
    poison = oru(PATIENT, "P1").replace("4.2", "POISON").encode()
    broker.publish(engine.lab, poison, oru(PATIENT, "R2").encode())
    rows = engine.wait_rows(JOURNAL, 2)
    by_id = {r[0]: r for r in rows}
    # Delivered twice (the delivery limit), then dead-lettered by the broker into its
    # <queue>.dead, which the engine journals as a dead letter with the original bytes.
    assert by_id["P1"][1:3] == ("dead_lettered", "poison_message")
    assert by_id["R2"][1] in ("held", "delivered")
    assert engine.rows("SELECT raw FROM journal_messages WHERE control_id = 'P1'") == [(poison,)]
    broker.wait_depth(engine.lab, 0)
    broker.wait_depth(f"{engine.lab}.dead", 0)


def test_the_reimbursement_feed_becomes_the_patients_reimbursements(
    engine: AmqpEngine, broker: Broker
) -> None:
    engine.admit()
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        body = (CDA_SAMPLES / "CNAM-HR_2021.01.xml").read_bytes()
        channel.basic_publish(engine.remb, "cnam-hr", body, mandatory=True)
    rows = engine.wait_rows(
        "SELECT message_type, trigger, state FROM journal_messages WHERE channel = "
        "'reimbursements'",
        1,
    )
    assert rows == [("CDA", "REMB", "delivered")]
    # 25 claims in the sample's history (tests/integration/test_documents.py reads the same).
    assert engine.rows(
        "SELECT count(*) FROM store_reimbursements r JOIN store_patients p "
        "ON p.id = r.patient_id WHERE p.ins = :ins",
        ins=INS,
    ) == [(25,)]


def test_without_its_broker_the_engine_runs_and_the_channel_waits(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"amqp://guest:secret-pw@127.0.0.1:{free_port()}/%2F"
    running = AmqpEngine(store_url, Broker(), amqp_url=nowhere)
    try:
        running.admit()  # the MLLP channel works
        assert running.rows("SELECT state FROM journal_messages") == [("delivered",)]
        sources = [s for s in running.engine.servers if hasattr(s, "connected")]
        assert sources and not any(s.connected.is_set() for s in sources)
        time.sleep(0.5)  # a few reconnection attempts
    finally:
        running.stop()
    logs = capsys.readouterr().out
    assert "amqp_waiting_for_broker" in logs
    assert "secret-pw" not in logs  # credentials never logged


def test_a_cancelled_consumer_reconnects_and_consumes_again(
    engine: AmqpEngine, broker: Broker
) -> None:
    engine.admit()
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        conn.channel().queue_delete(engine.lab)  # the broker cancels the engine's consumer
    deadline = time.monotonic() + 20
    while True:  # the source declares the queue again when it reconnects
        try:
            broker.depth(engine.lab)
            break
        except pika.exceptions.ChannelClosedByBroker:
            assert time.monotonic() < deadline, "the queue was never declared again"
            time.sleep(0.1)
    broker.publish(engine.lab, oru(PATIENT, "R5").encode())
    rows = engine.wait_rows(JOURNAL, 1)
    assert [r[:2] for r in rows] == [("R5", "delivered")]


def test_a_malformed_dead_letter_is_journaled_and_the_source_stays_up(
    engine: AmqpEngine, broker: Broker
) -> None:
    broker.publish(f"{engine.lab}.dead", b"not HL7 at all", headers={"x-death": [1]})
    [(_, state, code, _)] = engine.wait_rows(JOURNAL, 1)
    # Read like any message first: not HL7 is its own reason, kept before "poison".
    assert (state, code) == ("dead_lettered", "parse_error")
    broker.wait_depth(f"{engine.lab}.dead", 0)
    sources = [s for s in engine.engine.servers if s.inbox.channel == "lab_amqp"]
    assert sources[0].connected.is_set()  # type: ignore[attr-defined]


def test_a_document_dead_lettered_after_it_was_stored_keeps_one_end_state(
    engine: AmqpEngine, broker: Broker
) -> None:
    """A crash after the commit, before the ack: the broker may dead-letter a message the
    journal already has. The dead-letter path recognises it (document id and content)."""
    engine.admit()
    body = (CDA_SAMPLES / "CNAM-HR_2021.01.xml").read_bytes()
    broker.publish(engine.remb, body)
    query = "SELECT state, error_code FROM journal_messages WHERE channel = 'reimbursements'"
    assert engine.wait_rows(query, 1) == [("delivered", None)]
    broker.publish(f"{engine.remb}.dead", body, headers={"x-death": [{"count": 5}]})
    broker.wait_depth(f"{engine.remb}.dead", 0)
    engine.wait_idle()
    assert engine.rows(query) == [("delivered", None)]


def test_a_delivery_the_journal_cannot_store_stays_unacknowledged_until_it_can(
    engine: AmqpEngine,
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Contract 1: no acknowledgement without the commit. The delivery is neither acked nor
    requeued (a requeue would count against its delivery limit): its commit is retried."""
    engine.admit()
    real = Journal.append
    failures = {"left": 2}

    def failing(self: Journal, conn: Any, batch: Any) -> Any:
        if failures["left"] and any(m.channel == "lab_amqp" for m in batch):
            failures["left"] -= 1
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return real(self, conn, batch)

    monkeypatch.setattr(Journal, "append", failing)
    broker.publish(engine.lab, oru(PATIENT, "R7").encode())
    time.sleep(0.3)  # the first commit failed: the delivery is still the broker's, unacked
    assert engine.rows(JOURNAL) == []
    rows = engine.wait_rows(JOURNAL, 1)
    assert [r[:2] for r in rows] == [("R7", "delivered")]
    assert json.loads(str(rows[0][3]))["redelivered"] is False  # never requeued
    broker.wait_depth(engine.lab, 0)
    assert failures["left"] == 0
    # Two failed commits: the writer itself tries a lost connection once more on a fresh one
    # (issue 17), so the source retried once or twice depending on the connection's state.
    assert capsys.readouterr().out.count("amqp_journal_retry") in (1, 2)
