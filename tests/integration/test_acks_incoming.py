"""Issue 16, item 6: an acknowledgment sent to the engine is never answered (HL7: an ACK is not
acknowledged; answering one risks NAK loops between two engines). It is journaled, routed when
the channel accepts ``ACK^*``, else kept as a dead letter."""

from __future__ import annotations

import socket
from pathlib import Path

from engine.adapters.mllp_framing import frame
from tests.e2e.hl7_messages import a28
from tests.e2e.mllp_client import read_ack
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine

CHANNEL = (
    ENGINE_HEAD
    + """  - name: lab
    source: {{type: mllp, port: {port}}}
    accept: {accept}
    destinations: {{copy: {{type: file, directory: "{out}"}}}}
"""
)
#: An application ACK a laboratory sends back (as fr-ans/ack_r01_utf8.hl7 does).
INCOMING_ACK = (
    b"MSH|^~\\&|PFI-X|Organisation-X|SIL-Y|labo|202106060931||ACK^R01^ACK|016|P|2.5|||||FRA"
    b"|UNICODE UTF-8\rMSA|AA|015\r"
)
SILENCE_SECONDS = 0.5


def start(tmp_path: Path, accept: str) -> InProcessEngine:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    return InProcessEngine(CHANNEL, url=url, accept=accept, out=tmp_path / "out")


def silent(sock: socket.socket) -> bool:
    sock.settimeout(SILENCE_SECONDS)
    try:
        read_ack(sock)
    except TimeoutError:
        return True
    return False


def test_an_ack_sent_to_the_engine_gets_no_answer_and_is_kept_as_a_dead_letter(
    tmp_path: Path,
) -> None:
    engine = start(tmp_path, '["ADT^*"]')
    try:
        with engine.connect() as sock:
            sock.sendall(frame(INCOMING_ACK))
            assert silent(sock), "an acknowledgment was answered"
            sock.sendall(frame(a28(1)))  # the connection goes on serving
            sock.settimeout(10)
            assert b"MSA|AA|REG1" in read_ack(sock)
        engine.wait_idle()
        (row,) = engine.rows(
            "SELECT state, error_code, message_type, control_id FROM journal_messages "
            "WHERE message_type = 'ACK'"
        )
        assert row == ("dead_lettered", "unsupported_message_type", "ACK", "016")
    finally:
        engine.stop()


def test_an_ack_is_routed_without_answer_when_the_channel_accepts_acks(tmp_path: Path) -> None:
    engine = start(tmp_path, '["ACK^*"]')
    try:
        with engine.connect() as sock:
            sock.sendall(frame(INCOMING_ACK))
            assert silent(sock), "an acknowledgment was answered"
        engine.wait_idle()
        assert engine.rows("SELECT state FROM journal_messages") == [("delivered",)]
        (written,) = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
        assert written.read_bytes().startswith(INCOMING_ACK[:60])
    finally:
        engine.stop()
