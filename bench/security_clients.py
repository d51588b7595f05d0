"""Clients of bench/security.py: connections held against a listener from child processes
(idle, trickling, half-open HTTP), a synchronous MLLP sender that times its ACKs, the mutated
message sender and a plain HTTP POST.

Held connections live in child processes (a few thousand each) so that neither this process's
descriptors nor its event loop limit the attack; the parent asks them for counts over a pipe.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import multiprocessing as mp
import re
import resource
import socket
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection as Pipe
from typing import Any

START, END = b"\x0b", b"\x1c\r"
MSA = re.compile(rb"MSA\|([A-Z]{2})")
HALF_OPEN_HTTP = b"POST /documents HTTP/1.1\r\nHost: x\r\n"
#: What a trickling connection sends, one byte every TRICKLE_SECONDS, never ending its frame.
TRICKLE_BODY = b"MSH|^~\\&|TRICKLE|LAB|AIGUILLAGE|HOSP|20250101||ADT^A01|T1|P|2.5\rPID|1||" + (
    b"X" * 4096
)
TRICKLE_SECONDS = 0.5
#: A connection the listener closed this soon after it opened was refused, not timed out.
REFUSED_WITHIN = 1.0
#: Connections not opened by then are not attempted (counted).
CONNECT_PHASE_SECONDS = 120
COUNTS = ("connected", "connect_failed", "closed_by_engine", "closed_within_1s", "not_attempted")


class Held(asyncio.Protocol):
    """One held connection; counts what the listener does to it."""

    def __init__(self, kind: str, stats: collections.Counter[str]) -> None:
        self.kind = kind
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.opened = 0.0
        self.sent = 0
        self.ours = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.opened = time.monotonic()
        self.stats["connected"] += 1
        if self.kind == "http_half_open":
            transport.write(HALF_OPEN_HTTP)
        elif self.kind == "trickle":
            transport.write(START)

    def data_received(self, data: bytes) -> None:
        self.stats["answers_bytes"] += len(data)  # what a held connection was told

    def trickle(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            i = self.sent % len(TRICKLE_BODY)
            self.transport.write(TRICKLE_BODY[i : i + 1])
            self.sent += 1

    def close(self) -> None:
        self.ours = True
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ours:
            return
        self.stats["closed_by_engine"] += 1
        if time.monotonic() - self.opened < REFUSED_WITHIN:
            self.stats["closed_within_1s"] += 1


async def _hold(kind: str, port: int, count: int, sources: list[str], pipe: Pipe) -> None:
    loop = asyncio.get_running_loop()
    stats = collections.Counter(dict.fromkeys(COUNTS, 0))
    held: list[Held] = []
    gate = asyncio.Semaphore(100)  # the listen backlog would drop a burst of SYNs
    deadline = loop.time() + CONNECT_PHASE_SECONDS

    async def open_one(source: str) -> None:
        async with gate:
            if loop.time() > deadline:  # a listener that stopped accepting
                stats["not_attempted"] += 1
                return
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: Held(kind, stats), "127.0.0.1", port, local_addr=(source, 0)
                    ),
                    10,
                )
                held.append(proto)
            except (OSError, TimeoutError):
                stats["connect_failed"] += 1

    await asyncio.gather(*(open_one(sources[i % len(sources)]) for i in range(count)))
    pipe.send(dict(stats))

    async def trickle() -> None:
        while True:
            await asyncio.sleep(TRICKLE_SECONDS)
            for h in held:
                h.trickle()

    ticker = loop.create_task(trickle()) if kind == "trickle" else None
    while await loop.run_in_executor(None, pipe.recv) != "stop":
        pipe.send(dict(stats) | {"open": stats["connected"] - stats["closed_by_engine"]})
    if ticker is not None:
        ticker.cancel()
    final = dict(stats) | {"open": stats["connected"] - stats["closed_by_engine"]}
    for h in held:
        h.close()
    pipe.send(final)


def _holder_process(kind: str, port: int, count: int, sources: list[str], pipe: Pipe) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_hold(kind, port, count, sources, pipe))


class Holders:
    """``count`` connections of one kind held against ``port`` from ``processes`` children, each
    spreading its connections over ``addresses`` loopback addresses of its own, from
    127.0.0.<first_host> on (to go past a per-peer cap, as many senders would)."""

    def __init__(
        self,
        kind: str,
        port: int,
        count: int,
        processes: int,
        first_host: int = 10,
        addresses: int = 1,
    ) -> None:
        if first_host + processes * addresses > 255:
            raise ValueError("not that many loopback addresses in 127.0.0.0/24")
        ctx = mp.get_context("fork")
        self.pipes: list[Pipe] = []
        self.procs: list[Any] = []
        share, extra = divmod(count, processes)
        for i in range(processes):
            parent, child = ctx.Pipe()
            n = share + (1 if i < extra else 0)
            first = first_host + i * addresses
            sources = [f"127.0.0.{host}" for host in range(first, first + addresses)]
            proc = ctx.Process(target=_holder_process, args=(kind, port, n, sources, child))
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.opened = self._collect(timeout=180)  # counts once every connect was attempted

    def _collect(self, timeout: float = 30) -> dict[str, int]:
        total: collections.Counter[str] = collections.Counter()
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise RuntimeError("a connection holder did not answer")
            total.update(pipe.recv())
        return dict(total)

    def status(self) -> dict[str, int]:
        for pipe in self.pipes:
            pipe.send("status")
        return self._collect()

    def stop(self) -> dict[str, int]:
        for pipe in self.pipes:
            pipe.send("stop")
        final = self._collect()
        for proc, pipe in zip(self.procs, self.pipes, strict=True):
            proc.join(30)
            if proc.is_alive():
                proc.kill()
            pipe.close()
        return final


def ack_code(answer: bytes) -> str:
    found = MSA.search(answer)
    return found.group(1).decode() if found else "??"


def probe(
    port: int, messages: Sequence[bytes], timeout: float = 5.0, give_up_after: int = 5
) -> dict[str, Any]:
    """Send ``messages`` one at a time on one connection (reconnecting when it is lost), each
    after the previous answer; ACK latencies in ms. Stops after ``give_up_after`` failures in a
    row (a listener that no longer answers)."""
    latencies: list[float] = []
    codes: collections.Counter[str] = collections.Counter()
    failures = in_a_row = reconnects = 0
    sock: socket.socket | None = None
    for i, message in enumerate(messages):
        if in_a_row >= give_up_after:
            failures += len(messages) - i
            break
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout)
                reconnects += 1
            sent = time.perf_counter()
            sock.sendall(START + message + END)
            answer = _read_frame(sock)
            latencies.append((time.perf_counter() - sent) * 1000)
            codes[ack_code(answer)] += 1
            in_a_row = 0
        except OSError:
            failures += 1
            in_a_row += 1
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()
    return {
        "latencies_ms": latencies,
        "codes": dict(codes),
        "failures": failures,
        "connections": reconnects,
    }


def _read_frame(sock: socket.socket) -> bytes:
    buf = b""
    while END not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed before the answer")
        buf += chunk
    return buf


async def _one_mutation(port: int, payload: bytes, timeout: float) -> str:
    """ack, nak (the first answer's MSA-1), closed (no answer) or silent (none in time)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, TimeoutError):
        return "connect_failed"
    try:
        writer.write(START + payload + END)
        buf = b""
        deadline = time.monotonic() + timeout
        while END not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return "silent"
            chunk = await asyncio.wait_for(reader.read(65536), left)
            if not chunk:
                return "closed"
            buf += chunk
        return "ack" if ack_code(buf) in ("AA", "CA") else "nak"
    except TimeoutError:
        return "silent"
    except OSError:
        return "closed"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _send_mutations(
    port: int, payloads: Sequence[tuple[str, bytes]], parallel: int, timeout: float
) -> tuple[dict[str, dict[str, int]], list[float]]:
    outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    seconds: list[float] = []
    queue = iter(payloads)

    async def worker() -> None:
        for name, payload in queue:
            began = time.perf_counter()
            outcomes[name][await _one_mutation(port, payload, timeout)] += 1
            seconds.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return {name: dict(c) for name, c in outcomes.items()}, seconds


def send_mutations(
    port: int, payloads: Sequence[tuple[str, bytes]], parallel: int = 8, timeout: float = 30.0
) -> tuple[dict[str, dict[str, int]], list[float]]:
    """Each payload framed on a connection of its own (a broken frame cannot take the next
    message with it): outcome counts per mutation, and each payload's seconds to its outcome.
    ``timeout``: what a patient MLLP sender waits for an answer."""
    return asyncio.run(_send_mutations(port, payloads, parallel, timeout))


def post(port: int, path: str, body: bytes, timeout: float = 120) -> int:
    """POST ``body`` as XML; the status, or 0 when the connection failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/xml"})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()
