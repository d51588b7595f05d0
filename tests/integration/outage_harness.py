"""Helpers of the database outage tests: an engine in this process on a given database, an
MLLP line that times each answer, and polling with a deadline."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.adapters.mllp_framing import frame
from engine.channels.loader import parse_channels
from engine.runtime.wiring import Engine
from tests.e2e.engine_process import free_port
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


def message(n: int, padding: int = 0) -> str:
    """An A28 registering patient IPP<n>, control id OUT<n>; ``padding`` bytes of notes."""
    text = adt("A28", pid(f"IPP{n}"), f"OUT{n}")
    return text + f"\rNTE|1||{'x' * padding}" if padding else text


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

    def __enter__(self) -> MllpLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # also when the test failed: no socket left for a later test's GC


class WaitingEngine(OutageEngine):
    """An engine whose start runs in the background (it may wait for its database):
    ``started`` is the start's future."""

    def __init__(self, url: str, commit_timeout: float = 2.0) -> None:
        self.port = free_port()
        text = CHANNELS.format(port=self.port, url=url, commit_timeout=commit_timeout)
        self.engine = Engine(parse_channels(text))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.started = asyncio.run_coroutine_threadsafe(self.engine.start(), self.loop)


@contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted for the test (root only); skipped with the reason when it
    cannot be mounted and ``CI`` is unset."""
    path = Path(tempfile.mkdtemp(prefix="aiguillage-tmpfs-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        path.rmdir()
        reason = f"cannot mount a tmpfs (root only): {done.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason + " (and CI unset)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


def remount(path: Path, mode: str) -> None:
    """``ro`` or ``rw``: the whole file system read-only, whoever writes (even root)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)
