"""The engine in this process (its event loop in a thread), for tests that talk to it over
real sockets and read its database."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import hl7.client
from sqlalchemy import text

from engine.adapters.mllp_framing import frame
from engine.channels.loader import parse_channels
from engine.runtime.wiring import Engine
from tests.e2e.engine_process import free_port
from tests.e2e.mllp_client import read_ack

#: The head of a test channels text: its ``{url}`` database, test INS accepted; the channels
#: follow, indented as list items.
ENGINE_HEAD = """
engine:
  database_url: {url}
  durability: normal
  identity: {{accept_test_ins: true}}
channels:
"""

#: A channel registering patients over MLLP (on the engine's ``{port}``).
ADT_CHANNEL = """
  - name: adt
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
"""


class InProcessEngine:
    """Starts the engine of a channels text whose ``{port}`` is filled with a free port."""

    def __init__(self, channels: str, **values: object) -> None:
        self.port = free_port()
        self.engine = Engine(parse_channels(channels.format(port=self.port, **values)))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.engine.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.engine.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def send(self, *messages: str, wait: bool = True) -> list[str]:
        """Send over MLLP with python-hl7's client; the MSA-1 code of each ACK. ``wait``: until
        the pipeline is done with them."""
        codes = []
        with hl7.client.MLLPClient("127.0.0.1", self.port) as client:
            for message in messages:
                ack = client.send_message(message).decode("utf-8")
                msa = next(s for s in ack.replace("\n", "\r").split("\r") if s.startswith("MSA"))
                codes.append(msa.split("|")[1])
        if wait:
            self.wait_idle()
        return codes

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def exchange(
        self, payload: bytes, port: int | None = None, timeout: float = 10, encoding: str = "ascii"
    ) -> str:
        """Send one MLLP frame on a connection of its own and read its whole answer (decoded
        strictly with ``encoding``)."""
        with socket.create_connection(("127.0.0.1", port or self.port), timeout=timeout) as sock:
            sock.sendall(frame(payload))
            return read_ack(sock).strip(b"\x0b\x1c\r").decode(encoding)

    def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.db.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]

    def wait_idle(self) -> None:
        """Until no message waits for the pipeline (received, or retrying)."""
        for _ in range(500):
            if not self.rows(
                "SELECT id FROM journal_messages WHERE state IN ('received', 'retrying')"
            ):
                return
            time.sleep(0.02)
        raise AssertionError("pipeline did not finish")
