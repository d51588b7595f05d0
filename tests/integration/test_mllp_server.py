"""The MLLP source over real sockets: framing, limits, timeouts, charsets, ACK modes.

The engine runs in this process (its event loop in a thread) on a temporary SQLite database;
clients are plain blocking sockets, as a sender's would be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.adapters.mllp_framing import END_BLOCK, START_BLOCK, frame
from tests.e2e.mllp_client import read_ack
from tests.integration.inprocess import InProcessEngine

CHANNELS = """
engine:
  database_url: sqlite:///{db}
  durability: normal
channels:
  - name: test
    source:
      type: mllp
      port: {port}
      max_message_bytes: 4096
      idle_timeout_seconds: 1
      default_charset: "8859/1"
    accept: ["ADT^*", "ORU^R01"]
    destinations:
      store: {{type: record_store}}
"""


def adt(cid: str, name: str = "DARK", msh_tail: str = "") -> str:
    return (
        f"MSH|^~\\&|GAM|CHU|DPI|CHU|20240306111154||ADT^A04^ADT_A01|{cid}|P|2.5{msh_tail}\r"
        "EVN|A04|20240306111154\r"
        f"PID|1||{cid}^^^CHU^PI||{name}^JEANNE||19800101|F\r"
    )


class RunningEngine(InProcessEngine):
    def __init__(self, tmp: Path) -> None:
        super().__init__(CHANNELS, db=tmp / "e.db")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningEngine]:
    eng = RunningEngine(tmp_path)
    yield eng
    eng.stop()


def msa(ack: bytes) -> list[str]:
    text_ = ack.strip(START_BLOCK + END_BLOCK + b"\r").decode("latin-1")
    seg = next(s for s in text_.split("\r") if s.startswith("MSA"))
    return seg.split("|")


def test_messages_separated_by_lf_or_crlf_are_accepted(running: RunningEngine) -> None:
    with running.connect() as sock:
        for i, sep in enumerate(("\n", "\r\n", "\r")):
            sock.sendall(frame(adt(f"S{i}").replace("\r", sep).encode()))
            assert msa(read_ack(sock))[1:3] == ["AA", f"S{i}"]
    running.wait_idle()
    assert len(running.rows("SELECT id FROM store_patients")) == 3


def test_several_frames_in_one_write_get_one_ack_each_in_order(running: RunningEngine) -> None:
    with running.connect() as sock:
        sock.sendall(b"".join(frame(adt(f"B{i}").encode()) for i in range(20)))
        got = []
        buf = b""
        while len(got) < 20:
            buf += sock.recv(65536)
            while END_BLOCK in buf:
                one, buf = buf.split(END_BLOCK, 1)
                got.append(msa(one)[2])
    assert got == [f"B{i}" for i in range(20)]


def test_an_oversized_message_gets_a_nak_the_connection_is_closed_and_its_head_is_kept(
    running: RunningEngine,
) -> None:
    big = adt("BIG") + "NTE|1||" + "x" * 8000 + "\r"
    with running.connect() as sock:
        sock.sendall(frame(big.encode()))
        ack = read_ack(sock)
        assert msa(ack)[1] == "AR" and "4096" in msa(ack)[3]
        assert sock.recv(10) == b""  # closed by the engine
    (row,) = running.rows(
        "SELECT error_code, control_id, length(raw) FROM journal_messages"
        " WHERE state = 'dead_lettered'"
    )
    assert row[0] == "message_too_large" and row[1] == "BIG" and 0 < int(row[2]) <= len(big)
    with running.connect() as sock:  # the engine keeps serving
        sock.sendall(frame(adt("AFTER").encode()))
        assert msa(read_ack(sock))[1] == "AA"


def test_an_idle_connection_is_closed_after_the_timeout(running: RunningEngine) -> None:
    with running.connect() as sock:
        start = time.monotonic()
        assert sock.recv(10) == b""
        assert 0.5 < time.monotonic() - start < 5


def test_bytes_outside_frames_are_skipped_and_the_next_frame_is_answered(
    running: RunningEngine,
) -> None:
    with running.connect() as sock:
        sock.sendall(b"garbage before the frame\r\n" + frame(adt("J1").encode()))
        assert msa(read_ack(sock))[1:3] == ["AA", "J1"]


def test_character_sets_follow_msh18_with_the_channel_default(running: RunningEngine) -> None:
    with running.connect() as sock:
        # No MSH-18: the channel default, 8859/1.
        sock.sendall(frame(adt("L1", name="HÉLÈNE").encode("latin-1")))
        assert msa(read_ack(sock))[1] == "AA"
        # MSH-18 says 8859/15: the euro sign is byte 0xA4.
        tail = "||||||8859/15"
        sock.sendall(frame(adt("L2", name="€URO", msh_tail=tail).encode("iso8859-15")))
        assert msa(read_ack(sock))[1] == "AA"
        # MSH-18 says UTF-8 but the bytes are Latin-1: refused with a reason.
        tail = "||||||UNICODE UTF-8"
        sock.sendall(frame(adt("L3", name="HÉLÈNE", msh_tail=tail).encode("latin-1")))
        nak = msa(read_ack(sock))
        assert nak[1:3] == ["AR", "L3"] and "UTF-8" in nak[3]
    running.wait_idle()
    names = {r[0] for r in running.rows("SELECT birth_name FROM store_patients")}
    assert names == {"HÉLÈNE", "€URO"}


def test_enhanced_mode_answers_with_a_commit_ack(running: RunningEngine) -> None:
    with running.connect() as sock:
        sock.sendall(frame(adt("E1", msh_tail="|||AL|NE").encode()))
        assert msa(read_ack(sock))[1:3] == ["CA", "E1"]
        sock.sendall(frame(adt("E2", msh_tail="|||AL|NE").replace("ADT^A04", "SIU^S12").encode()))
        assert msa(read_ack(sock))[1:3] == ["CR", "E2"]


def test_a_resent_message_gets_the_same_ack_and_is_stored_once(running: RunningEngine) -> None:
    payload = frame(adt("R1").encode())
    with running.connect() as sock:
        sock.sendall(payload)
        first = msa(read_ack(sock))
    with running.connect() as sock:
        sock.sendall(payload)
        second = msa(read_ack(sock))
    assert first[1:] == second[1:] == ["AA", "R1"]
    running.wait_idle()
    assert running.rows("SELECT count(*) FROM journal_messages") == [(1,)]
    assert running.rows("SELECT count(*) FROM store_patients") == [(1,)]


def test_many_concurrent_connections_are_all_answered(running: RunningEngine) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        with running.connect() as sock:
            for i in range(10):
                sock.sendall(frame(adt(f"C{c}-{i}").encode()))
                code = msa(read_ack(sock))[1]
                with lock:
                    results.append(code)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count("AA") == 400


def test_control_characters_in_msh_10_still_get_an_answer(running: RunningEngine) -> None:
    with running.connect() as sock:
        sock.sendall(frame(adt("A\\X0B\\B\\X1C\\C").encode()))
        ack = read_ack(sock)
        assert msa(ack)[1] == "AA"
        assert ack.count(b"\x0b") == 1 and ack.count(b"\x1c") == 1  # framing intact
        sock.sendall(frame(adt("NEXT").encode()))  # and the connection still serves
        assert msa(read_ack(sock))[1:3] == ["AA", "NEXT"]


def test_a_nak_for_a_malformed_segment_names_its_position_not_its_text(
    running: RunningEngine,
) -> None:
    broken = adt("M1", name="DUPONT") + "dupont jean-pierre|clinical note\r"
    with running.connect() as sock:
        sock.sendall(frame(broken.encode()))
        nak = msa(read_ack(sock))
    assert nak[1:3] == ["AR", "M1"]
    assert "segment 4" in nak[3]
    assert "dupont" not in "|".join(nak).lower()


def test_a_line_break_inside_a_text_value_is_data_not_a_segment(running: RunningEngine) -> None:
    with_note = adt("N1") + "NTE|1||first line\nsecond line\r"
    with running.connect() as sock:
        sock.sendall(frame(with_note.encode()))
        assert msa(read_ack(sock))[1:3] == ["AA", "N1"]


def test_a_resend_with_a_new_msh7_is_still_a_resend(running: RunningEngine) -> None:
    first = adt("T1")
    again = first.replace("20240306111154||ADT", "20240306120000||ADT", 1)
    assert again != first
    with running.connect() as sock:
        for payload in (first, again):
            sock.sendall(frame(payload.encode()))
            assert msa(read_ack(sock))[1:3] == ["AA", "T1"]
    running.wait_idle()
    assert running.rows("SELECT count(*) FROM journal_messages") == [(1,)]


def test_a_control_id_reused_for_another_message_is_refused_and_kept(
    running: RunningEngine,
) -> None:
    with running.connect() as sock:
        sock.sendall(frame(adt("U1", name="FIRST").encode()))
        assert msa(read_ack(sock))[1] == "AA"
        sock.sendall(frame(adt("U1", name="OTHER").encode()))
        nak = msa(read_ack(sock))
    assert nak[1:3] == ["AR", "U1"] and "already used" in nak[3]
    running.wait_idle()
    rows = running.rows("SELECT state, error_code FROM journal_messages ORDER BY id")
    assert rows == [("delivered", None), ("dead_lettered", "control_id_reused")]
