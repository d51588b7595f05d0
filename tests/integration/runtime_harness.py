"""The engine of a channels file on disk, run in this process (its loop in a thread), for the
runtime's tests: listeners, channel control and reload."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text

from engine.adapters.mllp_framing import frame
from engine.channels.loader import load_channels
from engine.runtime.wiring import Engine
from tests.e2e.engine_process import free_port
from tests.e2e.mllp_client import read_ack

T = TypeVar("T")

#: A test channels file: a SQLite journal beside it, the admin listener on any free port.
HEAD = """
engine:
  database_url: sqlite:///engine.db
  durability: normal
  admin: {{host: 127.0.0.1, port: {admin}}}
channels:
"""

#: An MLLP channel writing what it receives to files under ``out/<name>``.
MLLP = """
  - name: {name}
    description: {description}
    source: {{type: mllp, port: {port}}}
    accept: ["*"]
    destinations: {{files: {{type: file, directory: out/{name}}}}}
"""

HTTP = """
  - name: {name}
    source: {{type: http, port: {port}, path: /in, auth: none, payload: hl7v2}}
    accept: ["*"]
    destinations: {{files: {{type: file, directory: out/{name}}}}}
"""

DIRECTORY = """
  - name: {name}
    source: {{type: directory, path: inbox/{name}, payload: hl7v2, pattern: "*.hl7",
              poll_seconds: 0.1, settle_seconds: 0}}
    accept: ["*"]
    destinations: {{files: {{type: file, directory: out/{name}}}}}
"""


def message(cid: str) -> bytes:
    return (
        f"MSH|^~\\&|LAB|CHU|AIG|CHU|20240306111154||ADT^A08^ADT_A01|{cid}|P|2.5\r"
        "EVN|A08|20240306111154\rPID|1||42^^^CHU^PI||NOM^PRENOM||19800101|F\r"
    ).encode()


def send(port: int, cid: str, timeout: float = 10.0) -> bytes:
    """One message on a new connection: its ACK (b"" when the peer closed first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(frame(message(cid)))
        return read_ack(sock)


class RunningEngine:
    """``Engine(load_channels(path), role, path)`` started on a loop thread."""

    def __init__(self, path: Path, role: str = "all") -> None:
        self.path = path
        self.engine = Engine(load_channels(path), role, path)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        try:
            self.call(self.engine.start(), 30)
        except BaseException:
            self._close_loop()
            raise

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.engine.stop(), 60)
        self._close_loop()

    def _close_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def admin_url(self) -> str:
        assert self.engine.admin is not None
        return f"http://127.0.0.1:{self.engine.admin.port}"

    def rows(self, sql: str, **params: object) -> list[tuple[Any, ...]]:
        with self.engine.db.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]

    def states(self) -> dict[str, str]:
        return {s.channel: s.state for s in self.engine.channels.statuses()}


def write_config(tmp: Path, *channels: str, admin: int = 0) -> Path:
    path = tmp / "channels.yaml"
    body = "".join(channels).replace("directory: out/", f"directory: {tmp}/out/")
    path.write_text(HEAD.format(admin=admin) + body.replace("path: inbox/", f"path: {tmp}/inbox/"))
    return path


def ports(count: int) -> list[int]:
    return [free_port() for _ in range(count)]


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
