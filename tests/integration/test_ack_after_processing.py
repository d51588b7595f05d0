"""``answer_after: processing``: the ACK of a message says what the pipeline made of it, so that
a document refused by the schema, or waiting for its patient, reaches its sender as AR or AE
with the reason, in the order the messages were sent."""

from __future__ import annotations

from collections.abc import Iterator

import hl7.client
import pytest

from engine.adapters.mllp_framing import frame
from tests.integration.identity_harness import adt, pid
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine
from tests.integration.test_documents import TSH, mdm

CHANNELS = (
    ENGINE_HEAD
    + """  - name: documents
    source: {{type: mllp, port: {port}, answer_after: processing, answer_timeout_seconds: 20}}
    accept: ["ADT^*", "MDM^*"]
    destinations:
      store: {{type: record_store, documents: {{xsd: cisis}}}}
"""
)
PATIENT = pid("IPP1", "279035121518989")
#: An element the CDA schema does not allow after the title (line 45 of the sample).
OFF_SCHEMA = TSH.read_bytes().replace(b"</title>", b"</title><unexpected/>", 1)


@pytest.fixture
def engine(store_url: str) -> Iterator[InProcessEngine]:
    running = InProcessEngine(CHANNELS, url=store_url)
    yield running
    running.stop()


def answers(engine: InProcessEngine, *messages: str) -> list[list[str]]:
    """MSA and ERR fields of each ACK, every message sent before the first ACK is read."""
    with engine.connect() as sock:
        sock.sendall(b"".join(frame(m.encode()) for m in messages))
        data = b""
        while data.count(b"\x1c") < len(messages):
            chunk = sock.recv(65536)
            assert chunk, "the engine closed the connection"
            data += chunk
    acks = [a.strip(b"\x0b\r\n").decode() for a in data.split(b"\x1c")[: len(messages)]]
    return [
        [f for s in a.split("\r") if s[:3] in ("MSA", "ERR") for f in s.split("|")] for a in acks
    ]


def test_each_ack_says_what_the_pipeline_made_of_the_message_in_order(
    engine: InProcessEngine,
) -> None:
    # Nobody admitted yet: the document waits for its patient (and is filed after the A28).
    got = answers(engine, mdm("T02", TSH.read_bytes(), "1"))
    got += answers(
        engine,
        adt("A28", PATIENT, "2"),
        mdm("T02", OFF_SCHEMA.replace(b"2024.9.1", b"2024.9.7"), "3"),
        mdm("T02", TSH.read_bytes().replace(b"2024.9.1", b"2024.9.8"), "4"),
    )
    assert [(a[1], a[2]) for a in got] == [("AE", "1"), ("AA", "2"), ("AR", "3"), ("AA", "4")]
    assert got[0][-4] == "902"  # ERR-5: the DMP code
    assert got[2][-4] == "invalid_document"
    assert "line 45" in got[2][-1] and "unexpected" in got[2][-1]  # ERR-8 names line and rule


def test_a_cda_broken_past_its_header_is_answered_ar_by_the_pipeline(
    engine: InProcessEngine,
) -> None:
    """Intake takes it (only the header is read there); the pipeline's parse refuses it, and
    the ACK after processing says so with the line."""
    broken = TSH.read_bytes().replace(b"</section>", b"</sectio>", 1)
    [got] = answers(engine, mdm("T02", broken.replace(b"2024.9.1", b"2024.9.6"), "1"))
    assert (got[1], got[2], got[-4]) == ("AR", "1", "invalid_document")
    assert "not well-formed XML (line 675)" in got[-1]


def test_a_resend_gets_the_same_answer_as_the_first_time(engine: InProcessEngine) -> None:
    with hl7.client.MLLPClient("127.0.0.1", engine.port) as client:
        client.send_message(adt("A28", PATIENT, "1"))
        bad = mdm("T02", OFF_SCHEMA, "2")
        first = client.send_message(bad).decode()
        again = client.send_message(bad).decode()
    assert "|AR|2|" in first
    assert first.split("\r")[1:] == again.split("\r")[1:]  # MSH-7 and MSH-10 aside


def test_without_the_option_the_ack_only_says_the_message_is_kept(store_url: str) -> None:
    running = InProcessEngine(CHANNELS.replace("answer_after: processing, ", ""), url=store_url)
    try:
        got = answers(running, mdm("T02", OFF_SCHEMA, "1"))
        running.wait_idle()
        state = running.rows("SELECT state, error_code FROM journal_messages")
    finally:
        running.stop()
    assert got[0][1] == "AA"
    assert state == [("dead_lettered", "invalid_document")]


def test_an_enhanced_mode_commit_ack_waits_its_turn(engine: InProcessEngine) -> None:
    """Enhanced mode (MSH-15 AL) is answered at commit, but never before the answers of the
    messages sent before it on the connection."""
    enhanced = adt("A28", PATIENT, "2").replace("|P|2.5||||||", "|P|2.5|||AL|NE|||", 1)
    got = answers(engine, mdm("T02", OFF_SCHEMA, "1"), enhanced)
    assert [(a[1], a[2]) for a in got] == [("AR", "1"), ("CA", "2")]
