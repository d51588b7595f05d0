"""The MLLP source under abuse, over real sockets: frames that break the reader, connection
caps and eviction, frame and idle timeouts, unread ACKs, buffered bytes, junk budgets."""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.adapters.mllp import MllpServer
from engine.adapters.mllp_framing import END_BLOCK, START_BLOCK, frame
from engine.intake.rules import MessageRules
from tests.e2e.mllp_client import read_ack
from tests.integration.inprocess import InProcessEngine

CHANNELS = """
engine:
  database_url: sqlite:///{db}
  durability: normal
channels:
  - name: limits
    source: {{type: mllp, port: {port}, max_message_bytes: 4096, {options}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
"""


def adt(cid: str, designators: str = "GAM|CHU|DPI|CHU") -> bytes:
    """An ADT^A04; ``designators`` are MSH-3 to MSH-6."""
    return (
        f"MSH|^~\\&|{designators}|20240306111154||ADT^A04^ADT_A01|{cid}|P|2.5"
        f"\rEVN|A04|20240306111154\rPID|1||{cid}^^^CHU^PI||DARK^JEANNE||19800101|F\r"
    ).encode()


def msa(ack: bytes) -> list[str]:
    text = ack.strip(START_BLOCK + END_BLOCK + b"\r").decode("latin-1")
    return next(s for s in text.split("\r") if s.startswith("MSA")).split("|")


def read_acks(sock: socket.socket, count: int) -> list[bytes]:
    acks, buf = [], b""
    while len(acks) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while END_BLOCK in buf:
            one, buf = buf.split(END_BLOCK, 1)
            acks.append(one)
    return acks


def closed_by_engine(sock: socket.socket, within: float = 5.0) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


class LimitsEngine(InProcessEngine):
    def __init__(self, tmp: Path, options: str) -> None:
        super().__init__(CHANNELS, db=tmp / "e.db", options=options)

    @property
    def server(self) -> MllpServer:
        server = self.engine.servers[0]
        assert isinstance(server, MllpServer)
        return server

    def dead_letters(self) -> list[tuple[object, ...]]:
        return self.rows(
            "SELECT error_code, control_id, properties FROM journal_messages"
            " WHERE state = 'dead_lettered' ORDER BY id"
        )


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[str], LimitsEngine]]:
    engines: list[LimitsEngine] = []

    def make(options: str = "idle_timeout_seconds: 30") -> LimitsEngine:
        engines.append(LimitsEngine(tmp_path, options))
        return engines[-1]

    yield make
    for eng in engines:
        eng.stop()


# -- defect 3: frames that broke the reader ------------------------------------------------


def test_a_first_segment_that_is_only_msh_gets_an_ar_and_the_other_frames_their_ack(
    start: Callable[[str], LimitsEngine],
) -> None:
    eng = start("idle_timeout_seconds: 30")
    broken = [b"MSH\rPID|1||X", b"MSH\r\rEVN|A04|20240306", b"MSH\nPID|1||X"]
    with eng.connect() as sock:
        sock.sendall(b"".join(frame(p) for p in [*broken, adt("AFTER")]))
        acks = read_acks(sock, 4)
    assert [msa(a)[1] for a in acks] == ["AR", "AR", "AR", "AA"]
    assert msa(acks[3])[2] == "AFTER"
    eng.wait_idle()
    assert [row[0] for row in eng.dead_letters()] == ["parse_error"] * 3


def test_an_unexpected_error_reading_one_frame_is_a_nak_and_the_next_frames_are_answered(
    start: Callable[[str], LimitsEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = MessageRules.prepare

    def failing(self: MessageRules, payload: bytes, peer: str = "", sender: str = ""):  # type: ignore[no-untyped-def]
        if b"BOOM" in payload:
            raise RuntimeError("DARK JEANNE")  # a message quoting patient data
        return real(self, payload, peer, sender)

    monkeypatch.setattr(MessageRules, "prepare", failing)
    eng = start("idle_timeout_seconds: 30")
    with eng.connect() as sock:
        sock.sendall(frame(adt("BOOM")) + frame(adt("NEXT")))
        acks = read_acks(sock, 2)
    assert [msa(a)[1:3] for a in acks] == [["AR", "BOOM"], ["AA", "NEXT"]]
    assert "DARK" not in acks[0].decode("latin-1") and "RuntimeError" in msa(acks[0])[3]
    eng.wait_idle()
    assert eng.dead_letters()[0][:2] == ("parse_error", "BOOM")


# -- defect 4: connection caps, eviction, timeouts -----------------------------------------


def test_idle_connection_is_closed_to_admit_a_new_one(
    start: Callable[[str], LimitsEngine],
) -> None:
    eng = start("max_connections: 2, idle_timeout_seconds: 30")
    oldest, newer = eng.connect(), eng.connect()
    time.sleep(0.1)
    newer.sendall(frame(adt("N1")))  # activity: now the newer idle one
    assert msa(read_ack(newer))[1] == "AA"
    with eng.connect() as third:
        third.sendall(frame(adt("T1")))
        assert msa(read_ack(third))[1] == "AA"
    assert closed_by_engine(oldest, 2)
    newer.sendall(frame(adt("N2")))
    assert msa(read_ack(newer))[1] == "AA"
    assert eng.server.counters["evicted_idle"] == 1
    oldest.close()
    newer.close()


def test_a_connection_over_the_cap_is_refused_and_counted_when_none_is_idle(
    start: Callable[[str], LimitsEngine],
) -> None:
    eng = start("max_connections: 2, idle_timeout_seconds: 30")
    busy = [eng.connect(), eng.connect()]
    for sock in busy:
        sock.sendall(START_BLOCK + adt("PARTIAL")[:20])  # a frame in progress: not idle
    time.sleep(0.2)
    with eng.connect() as refused:
        assert closed_by_engine(refused, 2)
    assert eng.server.counters["refused_max_connections"] == 1
    for sock in busy:
        sock.close()


def test_connections_of_one_peer_are_capped(start: Callable[[str], LimitsEngine]) -> None:
    eng = start("max_connections_per_peer: 1, idle_timeout_seconds: 30")
    with eng.connect() as first:
        first.sendall(START_BLOCK + b"MSH|")
        time.sleep(0.2)
        with eng.connect() as second:
            assert closed_by_engine(second, 2)
    assert eng.server.counters["refused_max_connections_per_peer"] == 1


def test_a_frame_trickled_past_the_frame_timeout_gets_a_nak_and_the_connection_closes(
    start: Callable[[str], LimitsEngine],
) -> None:
    eng = start("frame_timeout_seconds: 0.6, idle_timeout_seconds: 30")
    with eng.connect() as sock:
        sock.sendall(START_BLOCK)
        begun, ack = time.monotonic(), b""
        for byte in adt("SLOW") * 10:  # one byte every 20 ms, for longer than the timeout
            if select.select([sock], [], [], 0.02)[0]:
                ack = read_ack(sock)
                break
            sock.sendall(bytes([byte]))
        assert 0.5 < time.monotonic() - begun < 3
        assert msa(ack)[1] == "AR" and "0.6 s" in msa(ack)[3]
        assert closed_by_engine(sock)
    eng.wait_idle()
    assert eng.dead_letters()[0][0] == "framing_error"
    assert eng.server.counters["frames_refused_frame_timeout"] == 1


def test_unframed_bytes_trickled_do_not_keep_a_connection_open(
    start: Callable[[str], LimitsEngine],
) -> None:
    eng = start("idle_timeout_seconds: 0.8")
    with eng.connect() as sock:
        begun = time.monotonic()
        sock.settimeout(0.2)
        closed = False
        while time.monotonic() - begun < 4 and not closed:
            try:
                sock.sendall(b"x")
                closed = sock.recv(10) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
        assert closed and time.monotonic() - begun < 3
    assert eng.server.counters["closed_idle_timeout"] == 1


# -- defect 5: unread ACKs, ACK sizes, buffered bytes --------------------------------------


def test_a_peer_that_does_not_read_its_acks_stops_being_read(
    start: Callable[[str], LimitsEngine],
) -> None:
    eng = start("max_pending_ack_bytes: 4096, idle_timeout_seconds: 30")
    longest = "|".join(["A" * 20 + "^" + "1" * 199 + "^ISO"] * 4)  # MSH-3..6 an ACK echoes
    message = frame(adt("U", longest))
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
        sock.connect(("127.0.0.1", eng.port))
        sock.settimeout(3)
        sent = 0
        with pytest.raises(TimeoutError):
            for _ in range(20_000):  # 20,000 ACKs of about 1 KB: far more than any buffer
                sock.sendall(message)
                sent += 1
        assert eng.server.counters["paused_unread_acks"] >= 1
        assert sent < 20_000


def test_acks_to_a_header_with_a_huge_msh5_stay_small(
    start: Callable[[str], LimitsEngine],
) -> None:
    eng = start("idle_timeout_seconds: 30")
    huge = "R" * 3000  # within max_message_bytes (4096) here; 1 MB in the reported case
    message = adt("H1", f"GAM|CHU|{huge}|CHU")
    with eng.connect() as sock:
        sock.sendall(frame(message))
        ack = read_ack(sock)
    assert msa(ack)[1] == "AA" and len(ack) < 600


def test_unfinished_frames_past_the_buffer_limit_are_nakked_and_closed(
    start: Callable[[str], LimitsEngine],
) -> None:
    eng = start("max_buffered_bytes: 8192, idle_timeout_seconds: 30")
    holders = [eng.connect() for _ in range(2)]
    for i, sock in enumerate(holders):
        sock.sendall(START_BLOCK + adt(f"HOLD{i}") + b"NTE|1||" + b"x" * 3500)
        time.sleep(0.1)
    with eng.connect() as third:
        third.sendall(START_BLOCK + adt("OVER") + b"NTE|1||" + b"x" * 3500)
        ack = read_ack(third)
        assert msa(ack)[1:3] == ["AE", "OVER"]
        assert closed_by_engine(third)
    assert eng.server.counters["frames_refused_buffer_full"] == 1
    assert eng.server.buffered == 2 * (len(adt("HOLD0")) + 7 + 3500)
    for sock in holders:
        sock.close()


# -- defect 7: junk budget -----------------------------------------------------------------


def test_random_bytes_are_bounded_per_peer_and_summarised_in_one_counted_row(
    start: Callable[[str], LimitsEngine],
) -> None:
    eng = start("junk: {max_refused_per_minute: 20}, idle_timeout_seconds: 30")
    noise = random.Random(7).randbytes(2 * 1024 * 1024)
    assert noise.count(START_BLOCK) > 1000
    with eng.connect() as sock:
        with contextlib.suppress(OSError):  # cut off while sending
            sock.sendall(noise)
        assert closed_by_engine(sock)
    with eng.connect() as again:  # during the backoff: refused before reading a byte
        assert closed_by_engine(again, 2)
    for _ in range(100):  # the summary is written when the connection is gone
        rows = eng.dead_letters()
        summary = [r for r in rows if r[0] == "junk_suppressed"]
        if summary:
            break
        time.sleep(0.02)
    assert len(summary) == 1 and len(rows) <= 21
    counted = json.loads(str(summary[0][2]))
    assert counted["suppressed_payloads"] >= 1 and counted["suppressed_bytes"] > 0
    assert eng.server.counters["refused_junk_backoff"] == 1
