"""Helpers of the database outage tests: an engine in this process on a given database, an
MLLP line that times each answer, and polling with a deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from engine.adapters.mllp_framing import frame
from tests.e2e.mllp_client import read_ack
from tests.integration.identity_harness import adt, pid
from tests.integration.inprocess import InProcessEngine

CHANNELS = """
engine:
  database_url: {url}
  durability: normal
  commit_timeout_seconds: {commit_timeout}
  identity: {{accept_test_ins: true}}
channels:
  - name: adt
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
"""


def message(n: int) -> str:
    """An A28 registering patient IPP<n>, control id OUT<n>."""
    return adt("A28", pid(f"IPP{n}"), f"OUT{n}")


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not in {timeout:g} s: {what}"
        time.sleep(0.02)


class OutageEngine(InProcessEngine):
    def __init__(self, url: str, commit_timeout: float = 2.0) -> None:
        super().__init__(CHANNELS, url=url, commit_timeout=commit_timeout)

    def journaled(self, control_id: str) -> int:
        return len(self.rows("SELECT id FROM journal_messages WHERE control_id = :c", c=control_id))


class MllpLine:
    """One MLLP connection; ``ask`` sends a message and returns its MSA-1 and how long the
    answer took."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)

    def ask(self, text: str) -> tuple[str, float]:
        start = time.monotonic()
        self.sock.sendall(frame(text.encode()))
        ack = read_ack(self.sock).decode()
        msa = next(s for s in ack.strip("\x0b\x1c\r").split("\r") if s.startswith("MSA"))
        return msa.split("|")[1], time.monotonic() - start

    def close(self) -> None:
        self.sock.close()
