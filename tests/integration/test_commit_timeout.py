"""A journal that cannot commit (another process holds the database's lock) is answered at
``commit_timeout_seconds``: AE over MLLP, 503 over HTTP, and nothing is lost or stored twice
when the lock goes (SQLite and PostgreSQL)."""

from __future__ import annotations

import socket
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from engine.adapters.mllp_framing import frame
from engine.db import make_engine
from tests.e2e.engine_process import free_port
from tests.e2e.mllp_client import read_ack
from tests.integration.identity_harness import adt, pid
from tests.integration.inprocess import InProcessEngine
from tests.sample_files import CDA_SAMPLES

CHANNELS = """
engine:
  database_url: {url}
  durability: normal
  commit_timeout_seconds: 1
  identity: {{accept_test_ins: true}}
channels:
  - name: adt
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: documents_http
    source: {{type: http, port: {http_port}, auth: none}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
"""
TSH = CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"


@contextmanager
def database_locked(url: str) -> Iterator[None]:
    """Another process's exclusive hold on the journal: SQLite's write lock, PostgreSQL's
    ACCESS EXCLUSIVE lock on the journal table (inserts wait for it)."""
    if url.startswith("sqlite"):
        other = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    db = make_engine(url)
    try:
        with db.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE journal_messages IN ACCESS EXCLUSIVE MODE")
            yield
            conn.rollback()
    finally:
        db.dispose()


def send(port: int, message: str) -> tuple[str, float]:
    """The MSA-1 of the answer to ``message``, and how long it took."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame(message.encode()))
        ack = read_ack(sock).decode()
    msa = next(s for s in ack.strip("\x0b\x1c\r").split("\r") if s.startswith("MSA"))
    return msa.split("|")[1], time.monotonic() - start


def post(port: int, body: bytes) -> tuple[int, float]:
    start = time.monotonic()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/documents", body, {"Content-Type": "application/xml"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        with exc:  # closed now, not by the collector (a ResourceWarning, an error here)
            status = exc.code
    return status, time.monotonic() - start


class StalledEngine(InProcessEngine):
    def __init__(self, url: str) -> None:
        self.url, self.http_port = url, free_port()
        super().__init__(CHANNELS, url=url, http_port=self.http_port)

    def wait_until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, "not in 10 s"
            time.sleep(0.02)

    def journaled(self, control_id: str) -> int:
        return len(self.rows("SELECT id FROM journal_messages WHERE control_id = :c", c=control_id))

    def applied(self, control_id: str, ipp: str) -> tuple[list[tuple[object, ...]], int]:
        """The message's journal states, and how many patients the store holds for it."""
        states = self.rows("SELECT state FROM journal_messages WHERE control_id = :c", c=control_id)
        patients = self.rows(
            "SELECT patient_id FROM store_patient_identifiers WHERE value = :v", v=ipp
        )
        return states, len(patients)


@pytest.fixture
def stalled(store_url: str) -> Iterator[StalledEngine]:
    eng = StalledEngine(store_url)
    yield eng
    eng.stop()


def test_senders_hear_ae_at_the_commit_timeout_and_their_resends_are_applied_once(
    stalled: StalledEngine,
) -> None:
    first, second = adt("A28", pid("IPP1"), "STALL1"), adt("A28", pid("IPP2"), "STALL2")
    with database_locked(stalled.url):
        code, took = send(stalled.port, first)  # the writer takes it, and waits for the lock
        assert (code, 0.9 <= took <= 1.5) == ("AE", True), took
        code, took = send(stalled.port, second)  # queued behind it: expires in the queue
        assert (code, 0.9 <= took <= 1.5) == ("AE", True), took
        status, took = post(stalled.http_port, TSH.read_bytes())
        assert (status, took <= 1.5) == (503, True), took
    # The row the writer was committing when the lock went is stored; the ones it took after
    # their deadline are not (their senders were told to send again).
    stalled.wait_until(lambda: stalled.journaled("STALL1") == 1)
    stalled.wait_idle()
    assert stalled.journaled("STALL2") == 0
    assert stalled.rows("SELECT id FROM journal_messages WHERE channel = 'documents_http'") == []

    assert [send(stalled.port, m)[0] for m in (first, second)] == ["AA", "AA"]
    assert post(stalled.http_port, TSH.read_bytes())[0] == 202
    stalled.wait_idle()
    assert stalled.applied("STALL1", "IPP1") == ([("delivered",)], 1)
    assert stalled.applied("STALL2", "IPP2") == ([("delivered",)], 1)
    assert (
        len(stalled.rows("SELECT id FROM journal_messages WHERE channel = 'documents_http'")) == 1
    )


def test_an_enhanced_mode_sender_hears_ce_at_the_commit_timeout_then_ca_for_its_resend(
    stalled: StalledEngine,
) -> None:
    enhanced = adt("A28", pid("IPP3"), "STALL3").replace("|2.5||||||", "|2.5|||AL|NE||", 1)
    with database_locked(stalled.url):
        code, took = send(stalled.port, enhanced)
        assert (code, 0.9 <= took <= 1.5) == ("CE", True), took
    assert send(stalled.port, enhanced)[0] == "CA"
    stalled.wait_idle()
    assert stalled.applied("STALL3", "IPP3") == ([("delivered",)], 1)
