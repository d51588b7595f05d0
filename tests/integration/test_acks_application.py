"""Issue 16, item 2: a sender asking for an application acknowledgment (MSH-16) gets one,
once the pipeline has decided; with MSH-15 AL as well, after the commit ACK, as a message of
its own on the same connection."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.adapters.mllp_framing import frame
from engine.hl7v2.reader import Message
from tests.e2e.hl7_messages import a28, oru
from tests.e2e.mllp_client import read_ack
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine

CHANNEL = (
    ENGINE_HEAD
    + """  - name: lab
    source: {{type: mllp, port: {port}, answer_timeout_seconds: 10{extra}}}
    accept: ["ADT^*", "ORU^*"]
    destinations: {{store: {{type: record_store}}}}
"""
)
#: How long an answer that must not come is waited for.
SILENCE_SECONDS = 0.5


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[InProcessEngine]:
    running = InProcessEngine(CHANNEL, url=f"sqlite:///{tmp_path / 'engine.db'}", extra="")
    yield running
    running.stop()


def asking(payload: bytes, accept: str, application: str) -> bytes:
    """The message with MSH-15 (accept ACK type) and MSH-16 (application ACK type) set."""
    return payload.replace(b"|2.5||||||", f"|2.5|||{accept}|{application}||".encode(), 1)


def read(sock: socket.socket, timeout: float = 10) -> Message | None:
    sock.settimeout(timeout)
    try:
        data = read_ack(sock)
    except TimeoutError:
        return None
    return Message(data.strip(b"\x0b\x1c\r").decode())


def state(engine: InProcessEngine, control_id: str) -> object:
    found = engine.rows("SELECT state FROM journal_messages WHERE control_id = :c", c=control_id)
    return found[0][0]


def test_ne_al_gets_the_application_ack_once_the_message_is_processed(
    engine: InProcessEngine,
) -> None:
    with engine.connect() as sock:
        sock.sendall(frame(asking(a28(1), "NE", "AL")))
        ack = read(sock)
        assert ack is not None
        assert (ack.get("MSA-1"), ack.get("MSA-2")) == ("AA", "REG1")
        assert state(engine, "REG1") == "delivered"  # answered once the pipeline decided
        assert read(sock, SILENCE_SECONDS) is None  # one answer only


def test_ne_al_for_a_result_waiting_for_its_patient_gets_ae(engine: InProcessEngine) -> None:
    with engine.connect() as sock:
        sock.sendall(frame(asking(oru(2), "NE", "AL")))
        ack = read(sock)
    assert ack is not None
    assert (ack.get("MSA-1"), ack.get("ERR-5")) == ("AE", "902")


def test_al_al_gets_ca_then_the_application_ack_as_a_message_of_its_own(
    engine: InProcessEngine,
) -> None:
    with engine.connect() as sock:
        sock.sendall(frame(asking(a28(3), "AL", "AL")))
        commit, application = read(sock), read(sock)
    assert commit is not None and application is not None
    assert (commit.get("MSA-1"), commit.get("MSA-2")) == ("CA", "REG3")
    assert (application.get("MSA-1"), application.get("MSA-2")) == ("AA", "REG3")
    assert application.get("MSH-10") != commit.get("MSH-10")  # a message of its own
    assert application.get("MSH-9") == "ACK^A28^ACK"


def test_al_al_gets_only_ca_when_the_channel_sends_no_application_acks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    engine = InProcessEngine(CHANNEL, url=url, extra=", application_acks: none")
    try:
        with engine.connect() as sock:
            sock.sendall(frame(asking(a28(4), "AL", "AL")))
            commit = read(sock)
            assert commit is not None and commit.get("MSA-1") == "CA"
            assert read(sock, SILENCE_SECONDS) is None
    finally:
        engine.stop()


def test_ne_ne_is_still_answered_with_ca_because_mllp_senders_wait(
    engine: InProcessEngine,
) -> None:
    with engine.connect() as sock:
        sock.sendall(frame(asking(a28(5), "NE", "NE")))
        ack = read(sock)
    assert ack is not None and ack.get("MSA-1") == "CA"
