"""The distributed deployment for real: one intake and two workers (``aiguillage run --role``)
on PostgreSQL and RabbitMQ. A worker SIGKILLed mid-stream loses nothing: every message ends in
the record store exactly once, and each patient's messages are applied in arrival order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.broker import Broker
from tests.e2e.engine_process import EngineProcess, free_port, write_channels
from tests.e2e.hl7_messages import PATIENTS
from tests.e2e.mllp_client import RESULTS, Sender, register_patients

TOTAL = 10_000
CONNECTIONS = 5
KILL_AFTER = 3_000

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def worker(channels: Path, port: int, url: str, log: Path) -> EngineProcess:
    return EngineProcess(
        channels, port, url, log, args=("--role", "worker"), ready_line="worker_consuming"
    )


def test_a_worker_killed_mid_stream_loses_nothing_and_keeps_each_patients_order(
    tmp_path: Path, postgres_url: str, broker: Broker
) -> None:
    port = free_port()
    work = {"queue": broker.name("work"), "stale_seconds": 5, "sweep_seconds": 0.5}
    channels = write_channels(tmp_path, port, postgres_url, log_level="warning", work=work)
    channels.write_text(channels.read_text().replace("log_level: warning", "log_level: info"))
    intake = EngineProcess(
        channels, port, postgres_url, tmp_path / "intake.log", args=("--role", "intake")
    )
    workers = [worker(channels, port, postgres_url, tmp_path / f"worker{i}.log") for i in (1, 2)]
    intake.start()
    for w in workers:
        w.start()
    register_patients(port)
    intake.wait_idle()

    # Each connection sends the messages of its own patients in ascending order, so that
    # each patient's arrival order is known.
    acked: set[int] = set()
    lock = threading.Lock()
    senders = [
        Sender(port, [n for n in range(TOTAL) if n % PATIENTS % CONNECTIONS == c], acked, lock)
        for c in range(CONNECTIONS)
    ]
    for s in senders:
        s.start()
    deadline = time.monotonic() + 120
    delivered = "SELECT count(*) FROM journal_messages WHERE state = 'delivered'"
    while intake.scalar(delivered) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.05)
    workers[0].kill()
    assert KILL_AFTER <= intake.scalar(delivered) < TOTAL, "the kill must happen mid-stream"
    for s in senders:
        s.join(timeout=300)
    assert len(acked) == TOTAL
    workers[0].start()  # back again: it takes its share of what is left
    intake.wait_idle(timeout=300)

    everything = TOTAL + PATIENTS
    assert intake.scalar("SELECT count(DISTINCT control_id) FROM journal_messages") == everything
    assert intake.scalar(delivered) == everything
    assert intake.scalar("SELECT count(*) FROM store_observations") == TOTAL * RESULTS
    assert (
        intake.scalar(
            "SELECT count(*) FROM (SELECT message_id FROM store_observations "
            f"GROUP BY message_id HAVING count(*) <> {RESULTS}) AS wrong"
        )
        == 0
    )
    # Order: per patient, the results were stored in the order their messages arrived.
    out_of_order = intake.scalar(
        "SELECT count(*) FROM (SELECT message_id, lag(message_id) OVER "
        "(PARTITION BY patient_id ORDER BY id) AS before FROM store_observations) AS o "
        "WHERE o.message_id < o.before"
    )
    assert out_of_order == 0
    # Both workers took part, and the killed one's share went to the other.
    logs = [w.log.read_text() for w in workers]
    assert all("message_delivered" in text for text in logs)
    for w in workers:
        assert w.terminate() == 0
    assert intake.terminate() == 0
