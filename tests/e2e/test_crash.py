"""Contract 1 under SIGKILL: an ACKed message is durable, and after a restart and the senders'
resends every message is journaled once and applied to the record store once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.e2e.engine_process import EngineProcess, free_port, write_channels
from tests.e2e.hl7_messages import PATIENTS
from tests.e2e.mllp_client import RESULTS, Sender, register_patients

TOTAL = 5000
CONNECTIONS = 8
KILL_AFTER = 1500

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("pipeline", ["thread", "process"])
def test_contract_1_sigkill_mid_stream_loses_no_acked_message_and_applies_each_once(
    tmp_path: Path, pipeline: str
) -> None:
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'engine.db'}"
    channels = write_channels(tmp_path, port, db_url, log_level="warning", pipeline=pipeline)
    engine = EngineProcess(channels, port, db_url, tmp_path / "log")
    engine.start()
    register_patients(port)
    engine.wait_idle()
    acked: set[int] = set()
    lock = threading.Lock()
    senders = [
        Sender(port, list(range(i, TOTAL, CONNECTIONS)), acked, lock) for i in range(CONNECTIONS)
    ]
    for s in senders:
        s.start()
    deadline = time.monotonic() + 120
    while len(acked) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.005)
    children = engine.children()  # the pipeline process (and multiprocessing's tracker)
    assert bool(children) == (pipeline == "process")
    engine.kill()
    assert engine.gone(children), "the pipeline process outlived its killed parent"
    with lock:
        acked_before_kill = set(acked)
    assert KILL_AFTER <= len(acked_before_kill) < TOTAL, "the kill must happen mid-stream"

    results = "SELECT control_id FROM journal_messages WHERE control_id LIKE 'CTL%'"
    journaled = {int(cid[3:]) for cid in engine.column(results)}
    assert acked_before_kill <= journaled, "an ACKed message is missing after SIGKILL"

    engine.start()
    for s in senders:
        s.join(timeout=300)
    assert not any(s.is_alive() for s in senders)
    assert len(acked) == TOTAL
    engine.wait_idle(timeout=120)

    everything = TOTAL + PATIENTS
    assert engine.scalar("SELECT count(*) FROM journal_messages") == everything
    assert engine.scalar("SELECT count(DISTINCT control_id) FROM journal_messages") == everything
    delivered = "SELECT count(*) FROM journal_messages WHERE state = 'delivered'"
    assert engine.scalar(delivered) == everything
    assert engine.scalar("SELECT count(*) FROM store_observations") == TOTAL * RESULTS
    assert (
        engine.scalar(
            "SELECT count(*) FROM (SELECT message_id FROM store_observations "
            f"GROUP BY message_id HAVING count(*) <> {RESULTS}) AS wrong"
        )
        == 0
    )
    assert sum(s.resends for s in senders) >= 1
    assert engine.terminate() == 0
