"""Issue 16, items 1 and 5: a resend is told apart from a control id reused (the channel's
duplicate policy), and gets the answer the first copy got."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from engine.adapters.mllp_framing import frame
from engine.hl7v2.reader import Message
from tests.e2e.hl7_messages import a28, oru
from tests.e2e.mllp_client import read_ack
from tests.hl7_batches import batch_messages
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine

CHANNEL = (
    ENGINE_HEAD
    + """  - name: lab
    source: {{type: mllp, port: {port}{policy}}}
    accept: ["ADT^*", "ORU^*"]
    destinations: {{store: {{type: record_store}}}}
"""
)


def start(store_url: str, policy: str = "") -> InProcessEngine:
    return InProcessEngine(CHANNEL, url=store_url, policy=policy and f", duplicates: {policy}")


@pytest.fixture
def engine(store_url: str) -> Iterator[InProcessEngine]:
    running = start(store_url)
    yield running
    running.stop()


def ask(engine: InProcessEngine, *payloads: bytes) -> list[Message]:
    """Each payload sent on one connection, each answer read before the next is sent."""
    acks = []
    with socket.create_connection(("127.0.0.1", engine.port), timeout=10) as sock:
        for payload in payloads:
            sock.sendall(frame(payload))
            acks.append(one_ack(read_ack(sock).strip(b"\x0b\x1c\r").decode()))
    return acks


def one_ack(answer: str) -> Message:
    """An ACK, or the one ACK of a batch acknowledgement (a message sent with BTS/FTS
    trailers is a batch of one)."""
    [ack] = batch_messages(answer)
    return Message(ack)


def rows(engine: InProcessEngine) -> list[tuple[object, ...]]:
    return engine.rows("SELECT state, error_code FROM journal_messages ORDER BY id")


def resent_with_new_msh7(payload: bytes) -> bytes:
    return payload.replace(b"|20240306111154|", b"|20240307090000|", 1)


def test_a_resend_with_a_trimmed_trailing_space_is_accepted_as_the_resend_it_is(
    engine: InProcessEngine,
) -> None:
    first = oru(1).replace(b"|F|||20240306100000", b"|F|||20240306100000 ")
    trimmed = resent_with_new_msh7(oru(1))
    acks = ask(engine, first, trimmed)
    assert [a.get("MSA-1") for a in acks] == ["AA", "AA"]
    engine.wait_idle()
    assert len(rows(engine)) == 1  # journaled (and applied) once


def test_a_resend_without_its_batch_trailer_and_with_crlf_is_a_resend(
    engine: InProcessEngine,
) -> None:
    with_trailer = oru(2) + b"\rBTS|1\rFTS|1\r"
    crlf = resent_with_new_msh7(oru(2)).replace(b"\r", b"\r\n")
    assert [a.get("MSA-1") for a in ask(engine, with_trailer, crlf)] == ["AA", "AA"]
    assert len(rows(engine)) == 1


def test_a_control_id_reused_for_another_content_is_refused_with_err_3_205(
    engine: InProcessEngine,
) -> None:
    other = oru(3).replace(b"718-7^Hemoglobin", b"789-8^Erythrocytes")
    first, reused = ask(engine, oru(3), other)
    assert first.get("MSA-1") == "AA"
    assert reused.get("MSA-1") == "AR"
    assert reused.get("ERR-3.1") == "205"  # duplicate key identifier
    assert reused.get("ERR-3.2") == "Duplicate key identifier"
    assert reused.get("ERR-5") == "control_id_reused"
    engine.wait_idle()
    assert rows(engine)[1] == ("dead_lettered", "control_id_reused")


def test_without_normalising_a_trimmed_space_is_a_reused_control_id(store_url: str) -> None:
    engine = start(store_url, "{normalise: false}")
    try:
        first = oru(4) + b" "
        acks = ask(engine, first, resent_with_new_msh7(oru(4)), resent_with_new_msh7(first))
        # MSH-7 is still left out: the same bytes with a new MSH-7 are a resend.
        assert [a.get("MSA-1") for a in acks] == ["AA", "AR", "AA"]
    finally:
        engine.stop()


def test_with_accept_as_new_a_reused_control_id_is_a_new_message(store_url: str) -> None:
    engine = start(store_url, "{on_reuse: accept_as_new}")
    try:
        other = oru(5).replace(b"718-7^Hemoglobin", b"789-8^Erythrocytes")
        acks = ask(engine, oru(5), other, resent_with_new_msh7(other))
        assert [a.get("MSA-1") for a in acks] == ["AA", "AA", "AA"]
        engine.wait_idle()
        # Two messages (both waiting for their patient), the resend journaled once.
        assert [r[1] for r in rows(engine)] == ["902", "902"]
    finally:
        engine.stop()


def test_after_the_reuse_window_a_control_id_counts_as_new(store_url: str) -> None:
    engine = start(store_url, "{reuse_window_seconds: 0.5}")
    try:
        other = oru(6).replace(b"718-7^Hemoglobin", b"789-8^Erythrocytes")
        (first,) = ask(engine, oru(6))
        (too_soon,) = ask(engine, other.replace(b"789-8", b"777-3"))
        time.sleep(0.6)
        (later,) = ask(engine, other)
        assert [first.get("MSA-1"), too_soon.get("MSA-1"), later.get("MSA-1")] == [
            "AA",
            "AR",
            "AA",
        ]
    finally:
        engine.stop()


def test_a_resend_gets_the_first_answer_not_what_the_pipeline_wrote_since(
    engine: InProcessEngine,
) -> None:
    (first,) = ask(engine, oru(7))  # nobody admitted: the result waits for its patient
    engine.wait_idle()
    assert engine.rows("SELECT state, error_code FROM journal_messages") == [("held", "902")]
    (again,) = ask(engine, resent_with_new_msh7(oru(7)))
    assert again.get("MSA-1") == first.get("MSA-1") == "AA"
    assert again.get("MSA-3") == first.get("MSA-3") == ""  # not "no patient in the store..."
    assert again.segment("ERR") is None


def test_a_refused_message_resent_gets_the_same_refusal(engine: InProcessEngine) -> None:
    siu = a28(8).replace(b"ADT^A28^ADT_A05", b"SIU^S12^SIU_S12")
    first, again = ask(engine, siu, siu)
    assert first.get("MSA-1") == again.get("MSA-1") == "AR"
    assert first.get("MSA-3") == again.get("MSA-3")
    assert "SIU S12" in first.get("MSA-3")  # item 8: no separator to escape in the text
    msa = first.segment("MSA")
    assert msa is not None
    assert "\\S\\" not in first.msh.text and "\\S\\" not in msa.text
