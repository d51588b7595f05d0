"""A sender whose readable messages are refused for what they hold (a type the channel does not
take) is answered for each of them: only payloads refused before a control id could be read
count against a peer's junk budget (the samples test was cut off after 60 such refusals)."""

from __future__ import annotations

from pathlib import Path

from engine.adapters.mllp_framing import frame
from tests.e2e.hl7_messages import a28
from tests.e2e.mllp_client import read_ack
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine

CHANNEL = (
    ENGINE_HEAD
    + """  - name: adt
    source: {{type: mllp, port: {port}, junk: {{max_refused_per_minute: 5}}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
"""
)


def test_readable_refused_messages_are_all_answered_past_the_junk_budget(
    tmp_path: Path,
) -> None:
    engine = InProcessEngine(CHANNEL, url=f"sqlite:///{tmp_path / 'engine.db'}")
    try:
        with engine.connect() as sock:
            for n in range(20):  # four times the budget
                siu = a28(n).replace(b"ADT^A28^ADT_A05", b"SIU^S12^SIU_S12")
                sock.sendall(frame(siu))
                assert f"MSA|AR|REG{n}|".encode() in read_ack(sock)
            for _ in range(5):  # unreadable payloads still count...
                sock.sendall(frame(b"not HL7 at all"))
                assert b"MSA|AR||" in read_ack(sock)
            sock.sendall(frame(b"not HL7 at all"))  # ...and past 5 the peer is cut off
            assert read_ack(sock) == b""
    finally:
        engine.stop()
