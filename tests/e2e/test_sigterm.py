"""SIGTERM drains: what was acknowledged before the signal is processed before the engine exits."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from engine.adapters.mllp_framing import END_BLOCK, frame
from tests.e2e.engine_process import EngineProcess, free_port, write_channels
from tests.e2e.hl7_messages import PATIENTS, oru
from tests.e2e.mllp_client import register_patients

pytestmark = pytest.mark.slow
COUNT = 400


def test_sigterm_finishes_acknowledged_work_and_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'engine.db'}"
    channels = write_channels(tmp_path, port, db_url, log_level="warning")
    engine = EngineProcess(channels, port, db_url, tmp_path / "log")
    engine.start()
    register_patients(port)
    engine.wait_idle()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        # All at once: the pipeline is far behind intake when the signal comes.
        sock.sendall(b"".join(frame(oru(n, results=10)) for n in range(COUNT)))
        acks = b""
        while acks.count(END_BLOCK) < COUNT:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before every ACK"
            acks += chunk
    assert acks.count(b"MSA|AA|") == COUNT
    pending_at_signal = engine.scalar(
        "SELECT count(*) FROM journal_messages WHERE state = 'received'"
    )
    assert engine.terminate(timeout=60) == 0
    assert pending_at_signal > 0, "the test must signal while work is pending"
    delivered = "SELECT count(*) FROM journal_messages WHERE state = 'delivered'"
    assert engine.scalar(delivered) == COUNT + PATIENTS
    assert engine.scalar("SELECT count(*) FROM store_observations") == COUNT * 10
