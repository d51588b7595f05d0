"""The engine on PostgreSQL, chosen with AIGUILLAGE_DATABASE_URL over the channels file's SQLite."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.adapters.mllp_framing import frame
from engine.cli.send import split_file
from tests.e2e.engine_process import EngineProcess, free_port, write_channels
from tests.e2e.hl7_messages import PATIENTS
from tests.e2e.mllp_client import Sender, register_patients
from tests.sample_files import SAMPLES

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine(tmp_path: Path, postgres_url: str) -> Iterator[EngineProcess]:
    port = free_port()
    sqlite_url = f"sqlite:///{tmp_path / 'unused.db'}"
    proc = EngineProcess(
        write_channels(tmp_path, port, sqlite_url, log_level="warning"),
        port,
        postgres_url,
        tmp_path / "log",
        env={"AIGUILLAGE_DATABASE_URL": postgres_url},
    )
    proc.start()
    yield proc
    if proc.alive():
        proc.kill()
    assert not (tmp_path / "unused.db").exists(), "the environment variable must win"


def test_results_held_for_their_patients_flow_into_the_postgres_store_once_they_are_known(
    pg_engine: EngineProcess,
) -> None:
    acked: set[int] = set()
    senders = [
        Sender(pg_engine.port, list(range(i, 400, 4)), acked, threading.Lock()) for i in range(4)
    ]
    for s in senders:
        s.start()
    for s in senders:
        s.join(60)
    assert len(acked) == 400
    # A resend of message 7 is recognised: same ACK, nothing applied twice.
    again = Sender(pg_engine.port, [7], acked, threading.Lock())
    again.run()
    pg_engine.wait_idle()
    # No patient is known yet: every result waits (902), none is dead.
    assert pg_engine.column("SELECT DISTINCT state FROM journal_messages") == ["held"]
    register_patients(pg_engine.port)
    pg_engine.wait_idle()
    assert pg_engine.scalar("SELECT count(*) FROM journal_messages") == 400 + PATIENTS
    assert pg_engine.column("SELECT DISTINCT state FROM journal_messages") == ["delivered"]
    assert pg_engine.scalar("SELECT count(*) FROM store_observations") == 800
    assert pg_engine.scalar("SELECT count(*) FROM store_patients") == PATIENTS
    assert pg_engine.terminate() == 0


def test_a_french_admission_then_discharge_closes_the_encounter(pg_engine: EngineProcess) -> None:
    with socket.create_connection(("127.0.0.1", pg_engine.port), timeout=10) as sock:
        for name in ("adt_a01_sgl.hl7", "adt_a03_sgl.hl7"):
            (payload,) = split_file((SAMPLES / "fr-ans" / name).read_bytes())
            sock.sendall(frame(payload))
            assert b"MSA|AA|" in sock.recv(4096)
    pg_engine.wait_idle()
    assert pg_engine.column("SELECT status FROM store_encounters") == ["closed"]
    assert pg_engine.terminate() == 0
