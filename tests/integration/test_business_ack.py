"""The CI-SIS business acknowledgement ZAM^Z01, sent over the MLLP destination to a python-hl7
MLLP server standing for the laboratory's system: ``Y`` once a document is filed, ``N`` with
the error when the pipeline refuses it, nothing while it waits for its patient."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import hl7
import hl7.client
import pytest
from hl7.mllp import start_hl7_server

from engine.adapters.mllp_client import MllpDestination
from engine.errors import DestinationRejected, DestinationUnavailable
from engine.hl7v2.reader import Message
from engine.pipeline.delivery import Delivery
from tests.e2e.engine_process import free_port
from tests.integration.identity_harness import adt, pid
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine
from tests.integration.test_ack_after_processing import OFF_SCHEMA
from tests.integration.test_documents import TSH, mdm

CHANNELS = (
    ENGINE_HEAD
    + """  - name: documents
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*", "MDM^*"]
    destinations:
      store: {{type: record_store, documents: {{xsd: cisis}}}}
      lab: {{type: mllp, host: 127.0.0.1, port: {lab_port}, timeout_seconds: 2}}
    routes: [{{to: [store]}}]
    business_ack: {{send_to: [lab], application: PFI-X}}
"""
)
PATIENT = pid("IPP1", "279035121518989")


@dataclass
class LabServer:
    """python-hl7's asyncio MLLP server in a thread: keeps what it receives, answers
    ``answer`` (its own create_ack: AA by default)."""

    answer: str = "AA"
    received: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = start_hl7_server(self.handle, "127.0.0.1", self.port, encoding="utf-8")
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(10)

    async def handle(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter):  # type: ignore[no-untyped-def]
        try:
            while True:
                message = await reader.readmessage()
                self.received.append(str(message))
                writer.writemessage(message.create_ack(ack_code=self.answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def lab() -> Iterator[LabServer]:
    server = LabServer()
    yield server
    server.stop()


def zam_fields(text: str) -> tuple[str, str, str, str]:
    """MSH-9, OBX-4 (the acknowledged MSH-10), OBX-5.1 (Y/N), ERR-5.1 (the error code)."""
    zam = hl7.parse(text)
    err = str(zam["ERR.5.1"]) if "\rERR|" in text else ""
    return (str(zam.segment("MSH")[9]), str(zam["OBX.4"]), str(zam["OBX.5.1"]), str(err))


def outbox(engine: InProcessEngine, sent: int, timeout: float = 15) -> list[tuple[object, ...]]:
    """The outbox rows (message id, attempts, sent), once ``sent`` of them were sent."""
    deadline = time.monotonic() + timeout
    query = "SELECT message_id, attempts, sent_at IS NOT NULL FROM journal_outbox ORDER BY id"
    while True:
        rows = engine.rows(query)
        if sum(bool(r[2]) for r in rows) >= sent:
            return rows
        assert time.monotonic() < deadline, f"outbox: {rows}"
        time.sleep(0.05)


def test_a_zam_goes_back_for_each_document_filed_or_refused(store_url: str, lab: LabServer) -> None:
    engine = InProcessEngine(CHANNELS, url=store_url, lab_port=lab.port)
    try:
        engine.send(mdm("T02", TSH.read_bytes(), "1"))  # waits for its patient: no ZAM yet
        assert engine.rows("SELECT count(*) FROM journal_outbox") == [(0,)]
        engine.send(adt("A28", PATIENT, "2"), mdm("T02", OFF_SCHEMA, "3"))
        outbox(engine, 2)
        states = engine.rows("SELECT control_id, state FROM journal_messages ORDER BY id")
    finally:
        engine.stop()
    assert states == [("1", "delivered"), ("2", "delivered"), ("3", "dead_lettered")]
    # No ZAM for the ADT; Y for the document filed once its patient came, N for the refused one.
    got = sorted(zam_fields(z) for z in lab.received)
    assert got == [
        ("ZAM^Z01^ZAM_Z01", "1", "Y", ""),
        ("ZAM^Z01^ZAM_Z01", "3", "N", "invalid_document"),
    ]
    first = hl7.parse(lab.received[0])
    assert (str(first["MSH.3"]), str(first["MSH.5"]), str(first.segment("MSH")[21])) == (
        "PFI-X",
        "GAM",
        "2.1^CISIS_CDA_HL7_V2",
    )
    # Its MSH-10 comes from the journal id: a ZAM sent twice (a re-run batch) is recognisable.
    assert sorted(str(hl7.parse(z)["MSH.10"]) for z in lab.received) == ["ZAM1", "ZAM3"]


RETRIED = CHANNELS.replace(
    "    routes: [{{to: [store]}}]",
    "      down: {{type: mllp, host: 127.0.0.1, port: {down_port}, timeout_seconds: 1}}\n"
    "    routes: [{{to: [store]}}, {{when: {{message_types: [MDM^*]}}, to: [down]}}]\n"
    "    errors: {{max_attempts: 2, backoff: {{initial_seconds: 0.1}}}}",
)


def test_a_document_dead_lettered_after_its_retries_gets_its_n_and_review_gets_none(
    store_url: str, lab: LabServer
) -> None:
    engine = InProcessEngine(RETRIED, url=store_url, lab_port=lab.port, down_port=free_port())
    other = pid("IPP2", "185057512300143", name="MARTIN", given="PAUL", dob="19850505", sex="M")
    try:
        engine.send(adt("A28", PATIENT, "1"), adt("A28", other, "2"))
        # The document's recordTarget is not PAUL MARTIN: identity review (904), no ZAM.
        engine.send(mdm("T02", TSH.read_bytes(), "3", pid_segment=other))
        # The second destination never answers: retried, then dead-lettered: ZAM N.
        engine.send(mdm("T02", TSH.read_bytes(), "4"))
        outbox(engine, 1)
        states = engine.rows("SELECT control_id, state, error_code FROM journal_messages")
    finally:
        engine.stop()
    assert sorted(states) == [
        ("1", "delivered", None),
        ("2", "delivered", None),
        ("3", "review", "904"),
        ("4", "dead_lettered", "destination_unavailable"),
    ]
    assert [zam_fields(z) for z in lab.received] == [
        ("ZAM^Z01^ZAM_Z01", "4", "N", "destination_unavailable")
    ]


def test_a_zam_waits_in_the_outbox_until_its_peer_answers(store_url: str) -> None:
    port = free_port()
    engine = InProcessEngine(CHANNELS, url=store_url, lab_port=port)  # nobody listens yet
    try:
        engine.send(adt("A28", PATIENT, "1"), mdm("T02", TSH.read_bytes(), "2"))
        states = engine.rows("SELECT control_id, state FROM journal_messages ORDER BY id")
        deadline = time.monotonic() + 10
        while not engine.rows("SELECT id FROM journal_outbox WHERE attempts > 0"):
            assert time.monotonic() < deadline, "never attempted"
            time.sleep(0.05)
        [(error,)] = engine.rows("SELECT last_error FROM journal_outbox")
        lab = LabServer(port=port)  # the peer comes back: the retry (1 s later) reaches it
        try:
            [(message_id, attempts, sent)] = outbox(engine, 1)
        finally:
            lab.stop()
    finally:
        engine.stop()
    assert states == [("1", "delivered"), ("2", "delivered")]  # the document never waited
    assert "MLLP peer 127.0.0.1" in str(error)
    assert (message_id, sent) == (2, True) and attempts >= 2
    assert [zam_fields(z)[1:3] for z in lab.received] == [("2", "Y")]


def delivery(text: str) -> Delivery:
    return Delivery(None, 1, "c", Message(text), text.encode(), datetime.now(UTC))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "error"), [("AA", None), ("AE", DestinationUnavailable), ("AR", DestinationRejected)]
)
def test_the_mllp_destination_reads_the_peer_answer(
    answer: str, error: type[Exception] | None
) -> None:
    server = LabServer(answer=answer)
    destination = MllpDestination("lab", "127.0.0.1", server.port, 2)
    try:
        if error is None:
            destination.write(delivery(adt("A28", PATIENT, "9")))
        else:
            with pytest.raises(error, match=f"answered {answer}"):
                destination.write(delivery(adt("A28", PATIENT, "9")))
    finally:
        server.stop()
    assert [m.split("\r")[0] for m in server.received] == [adt("A28", PATIENT, "9").split("\r")[0]]


def test_the_mllp_destination_keeps_one_deadline_for_a_trickling_peer() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def trickle() -> None:
            conn, _ = listener.accept()
            with conn:
                for _ in range(40):  # a junk byte every 0.1 s: never a frame
                    time.sleep(0.1)
                    with contextlib.suppress(OSError):
                        conn.sendall(b"x")

        threading.Thread(target=trickle, daemon=True).start()
        destination = MllpDestination("lab", "127.0.0.1", port, 1)
        started = time.monotonic()
        with pytest.raises(DestinationUnavailable, match="no ACK within 1 s"):
            destination.write(delivery(adt("A28", PATIENT, "9")))
        assert time.monotonic() - started < 2


def test_the_mllp_destination_says_when_nobody_listens() -> None:
    destination = MllpDestination("lab", "127.0.0.1", free_port(), 1)
    with pytest.raises(DestinationUnavailable, match=r"MLLP peer 127\.0\.0\.1"):
        destination.write(delivery(adt("A28", PATIENT, "9")))
