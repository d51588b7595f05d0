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
from tests.rabbit_private import PrivateRabbit, private_rabbit_fixture  # noqa: F401

TOTAL = 10_000
CONNECTIONS = 5
KILL_AFTER = 3_000

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
DELIVERED = "SELECT count(*) FROM journal_messages WHERE state = 'delivered'"


def start_deployment(
    tmp_path: Path, url: str, broker: Broker, workers: int
) -> tuple[int, EngineProcess, list[EngineProcess]]:
    """An intake and ``workers`` workers on the repository's channels, patients registered."""
    port = free_port()
    work = {
        "queue": broker.name("work"),
        "stale_seconds": 5,
        "sweep_seconds": 0.5,
        "broker": {"url": broker.url, "url_env": "AIGUILLAGE_TEST_NO_SUCH_VARIABLE"},
    }
    channels = write_channels(tmp_path, port, url, log_level="warning", work=work)
    channels.write_text(channels.read_text().replace("log_level: warning", "log_level: info"))
    intake = EngineProcess(channels, port, url, tmp_path / "intake.log", args=("--role", "intake"))
    running = [worker(channels, port, url, tmp_path / f"worker{i}.log") for i in range(workers)]
    intake.start()
    for w in running:
        w.start()
    register_patients(port)
    intake.wait_idle()
    return port, intake, running


def senders_by_patient(port: int, total: int, acked: set[int]) -> list[Sender]:
    """Each connection sends the messages of its own patients in ascending order, so that
    each patient's arrival order is known."""
    lock = threading.Lock()
    return [
        Sender(port, [n for n in range(total) if n % PATIENTS % CONNECTIONS == c], acked, lock)
        for c in range(CONNECTIONS)
    ]


def assert_each_once_and_in_order(intake: EngineProcess, total: int) -> None:
    everything = total + PATIENTS
    assert intake.scalar("SELECT count(DISTINCT control_id) FROM journal_messages") == everything
    assert intake.scalar(DELIVERED) == everything
    assert intake.scalar("SELECT count(*) FROM store_observations") == total * RESULTS
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


def worker(channels: Path, port: int, url: str, log: Path) -> EngineProcess:
    return EngineProcess(
        channels, port, url, log, args=("--role", "worker"), ready_line="worker_consuming"
    )


def test_a_worker_killed_mid_stream_loses_nothing_and_keeps_each_patients_order(
    tmp_path: Path, postgres_url: str, broker: Broker
) -> None:
    port, intake, workers = start_deployment(tmp_path, postgres_url, broker, 2)
    acked: set[int] = set()
    senders = senders_by_patient(port, TOTAL, acked)
    for s in senders:
        s.start()
    deadline = time.monotonic() + 120
    while intake.scalar(DELIVERED) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.05)
    workers[0].kill()
    assert KILL_AFTER <= intake.scalar(DELIVERED) < TOTAL, "the kill must happen mid-stream"
    for s in senders:
        s.join(timeout=300)
    assert len(acked) == TOTAL
    workers[0].start()  # back again: it takes its share of what is left
    intake.wait_idle(timeout=300)
    assert_each_once_and_in_order(intake, TOTAL)
    # Both workers took part.
    assert all("message_delivered" in w.log.read_text() for w in workers)
    for w in workers:
        assert w.terminate() == 0
    assert intake.terminate() == 0


def test_a_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, postgres_url: str, private_rabbit: PrivateRabbit
) -> None:
    """Work items published while the broker (a node of the test's own) is away are lost
    with it (the intake says so); their messages are journaled, and the workers' sweep takes
    them after stale_seconds."""
    total = 3_000
    broker = Broker(url=private_rabbit.url)
    port, intake, workers = start_deployment(tmp_path, postgres_url, broker, 1)
    acked: set[int] = set()
    senders = senders_by_patient(port, total, acked)
    for s in senders:
        s.start()
    while intake.scalar(DELIVERED) < 500:
        time.sleep(0.05)
    private_rabbit.restart(pause=2.0)
    for s in senders:
        s.join(timeout=300)
    assert len(acked) == total  # MLLP intake never needed the broker
    intake.wait_idle(timeout=300)
    assert_each_once_and_in_order(intake, total)
    assert "amqp_waiting_for_broker" in workers[0].log.read_text()
    assert workers[0].terminate() == 0
    assert intake.terminate() == 0
