"""MLLP ingest benchmark: the engine (ACK after the journal commit, full pipeline into SQLite)
against a python-hl7 reference server, on generated 1.6 KB ORU^R01 messages with 10 OBX.

The messages carry a qualified French identity (IPP + INS in PID-3, PID-5 typed L, PID-32
VALI: bench/generate.py). The engine holds results for patients it does not know (902), so
every engine started here is first sent one ADT^A28 per pool patient (2,000, untimed, same PID
as the results), and the benchmark waits until they are delivered before the timed steps. A
message ending ``held``, ``review`` or ``dead_lettered`` fails the benchmark.

Per run:

1. ``null`` server (bench/reference_server.py --mode null: fixed ACK, no parsing): the ceiling of
   the load client on this machine, so that a reader can see the client is not the limit.
2. Reference server (python-hl7 ``start_hl7_server`` + ``hl7.parse`` + ``create_ack()``, stores
   nothing) at 1 and 16 connections.
3. The engine (``aiguillage run`` on a temporary copy of channels.yaml: free port, fresh SQLite
   database in a temporary directory, log level ``warning``) at 1 and 16 connections, synchronous
   senders (each connection sends its next message when the previous ACK arrived, like a real
   MLLP client); then 16 connections with a window of ``--window`` messages in flight
   (pipelined). After each step the benchmark waits until the journal shows every message
   ``delivered`` (read-only polling of the SQLite file) and reports N / (that time - first send)
   as the full pipeline rate.

``--long`` adds a 100,000-message run at 16 connections against a fresh engine with the engine's
RSS sampled from /proc (peak, median of the first and last tenth). ``--profile`` attaches py-spy
to the engine during one extra 16-connection step and writes collapsed stacks to bench/results/.

The load client runs in separate processes (one per 4 connections, asyncio, raw sockets with
MLLP framing). The machine's cores are shared by client and server: the JSON says how many.
Output: one JSON document on stdout, also saved to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from generate import POOL_SIZE, generate, registrations  # noqa: E402

VENV_BIN = Path(sys.executable).parent
#: Journal states a benchmark message must never end in (the pipeline did not file it).
FAILED_STATES = ("held", "review", "dead_lettered")
START, END = b"\x0b", b"\x1c\r"
CONNECTIONS_PER_CLIENT_PROCESS = 4

# -- load client (runs in child processes) ------------------------------------------------------


class ClientConnection(asyncio.Protocol):
    """Sends its messages with at most ``window`` unacknowledged; records each ACK latency."""

    def __init__(self, messages: Sequence[bytes], window: int, done: asyncio.Future[None]) -> None:
        self.messages = messages
        self.window = window
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.next = 0
        self.acked = 0
        self.naks = 0
        self.sent_at: collections.deque[float] = collections.deque()
        self.latencies = array("d")
        self.buffer = b""
        self.first_send = 0.0
        self.last_ack = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def start(self) -> None:
        self.first_send = time.perf_counter()
        if not self.messages:
            self.done.set_result(None)
            return
        self._send(min(self.window, len(self.messages)))

    def _send(self, count: int) -> None:
        assert self.transport is not None
        end = min(self.next + count, len(self.messages))
        now = time.perf_counter()
        self.sent_at.extend([now] * (end - self.next))
        self.transport.write(b"".join(self.messages[self.next : end]))
        self.next = end

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data
        if END not in buf:
            self.buffer = buf
            return
        acks = buf.split(END)
        self.buffer = acks.pop()
        now = time.perf_counter()
        for ack in acks:
            self.latencies.append(now - self.sent_at.popleft())
            if b"MSA|AA|" not in ack and b"MSA|CA|" not in ack:
                self.naks += 1
        self.acked += len(acks)
        self.last_ack = now
        remaining = len(self.messages) - self.next
        if remaining:
            self._send(min(len(acks), remaining))
        elif self.acked >= len(self.messages) and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost after {self.acked} ACKs"))


async def _client_main(
    port: int, per_conn: list[list[bytes]], window: int, pipe: Pipe, go: Any, tls_ca: str | None
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    tls = ssl.create_default_context(cafile=tls_ca) if tls_ca else None
    conns: list[ClientConnection] = []
    for msgs in per_conn:
        done: asyncio.Future[None] = loop.create_future()
        _, proto = await loop.create_connection(
            functools.partial(ClientConnection, msgs, window, done), "127.0.0.1", port, ssl=tls
        )
        conns.append(proto)
    pipe.send("ready")
    await loop.run_in_executor(None, go.wait)
    for c in conns:
        c.start()
    await asyncio.gather(*(c.done for c in conns))
    for c in conns:
        assert c.transport is not None
        c.transport.close()
    lat = array("d")
    for c in conns:
        lat.extend(c.latencies)
    return {
        "acked": sum(c.acked for c in conns),
        "naks": sum(c.naks for c in conns),
        "first_send": min(c.first_send for c in conns),
        "last_ack": max(c.last_ack for c in conns),
        "latencies": lat.tobytes(),
    }


def _client_process(
    port: int, per_conn: list[list[bytes]], window: int, pipe: Pipe, go: Any, tls_ca: str | None
) -> None:
    try:
        result = asyncio.run(_client_main(port, per_conn, window, pipe, go, tls_ca))
    except Exception as exc:  # reported to the parent, which fails the measurement
        result = {"error": f"{type(exc).__name__}: {exc}"}
    pipe.send(result)
    pipe.close()


# -- load driver (parent) -----------------------------------------------------------------------


@dataclass
class Load:
    messages: int
    connections: int
    window: int
    acked: int
    naks: int
    seconds: float  # first send -> last ACK
    first_send: float
    latencies_ms: list[float]
    samples: list[tuple[float, int]] = field(default_factory=list)  # (time, RSS kB)
    delivered_at: float | None = None  # journal shows all delivered (perf_counter)
    delivered_while_sending: int = 0  # of this step's messages, when the last ACK came

    @property
    def rate(self) -> float:
        return self.acked / self.seconds

    def pipeline_rate(self) -> float | None:
        if self.delivered_at is None:
            return None
        return self.messages / (self.delivered_at - self.first_send)

    def pipeline_rate_while_sending(self) -> float:
        """Messages delivered per second while intake ran (first send to last ACK)."""
        return self.delivered_while_sending / self.seconds

    def latency(self, q: float) -> float:
        return quantile(self.latencies_ms, q)


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def run_load(
    port: int,
    messages: Sequence[bytes],
    connections: int,
    window: int = 1,
    on_tick: Callable[[], None] | None = None,
    tick: float = 0.1,
    tls_ca: str | None = None,
) -> Load:
    """Send ``messages`` over ``connections`` (message i on connection i % connections); over
    TLS when ``tls_ca`` (the CA file that signed the server's certificate) is given."""
    ctx = mp.get_context("fork")
    per_conn: list[list[bytes]] = [[] for _ in range(connections)]
    for i, m in enumerate(messages):
        per_conn[i % connections].append(START + m + END)
    nproc = max(1, math.ceil(connections / CONNECTIONS_PER_CLIENT_PROCESS))
    go = ctx.Event()
    procs: list[tuple[Any, Pipe]] = []
    for p in range(nproc):
        mine = per_conn[p::nproc]
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_client_process, args=(port, mine, window, child_end, go, tls_ca))
        proc.start()
        child_end.close()
        procs.append((proc, parent_end))
    for _, pipe in procs:
        if not pipe.poll(30):
            raise RuntimeError("a client process did not connect")
        ready = pipe.recv()
        if ready != "ready":
            raise RuntimeError(f"client process failed: {ready}")
    go.set()
    results: list[dict[str, Any] | None] = [None] * nproc
    while any(r is None for r in results):
        for i, (_, pipe) in enumerate(procs):
            if results[i] is None and pipe.poll(0):
                results[i] = pipe.recv()
        if on_tick is not None:
            on_tick()
        if any(r is None for r in results):
            time.sleep(tick)
    for proc, pipe in procs:
        proc.join(10)
        pipe.close()
    done = [r for r in results if r is not None]
    errors = [r["error"] for r in done if "error" in r]
    if errors:
        raise RuntimeError(f"load client failed: {errors}")
    lat = array("d")
    for r in done:
        lat.frombytes(r["latencies"])
    first = min(r["first_send"] for r in done)
    last = max(r["last_ack"] for r in done)
    return Load(
        messages=len(messages),
        connections=connections,
        window=window,
        acked=sum(r["acked"] for r in done),
        naks=sum(r["naks"] for r in done),
        seconds=last - first,
        first_send=first,
        latencies_ms=[x * 1000 for x in lat],
    )


# -- servers under test -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def reference_server(mode: str) -> Iterator[int]:
    """``null`` or ``hl7`` (bench/reference_server.py), or ``floor`` (bench/floor_server.py:
    durable intake at the least, its SQLite file in a temporary directory it removes)."""
    port = free_port()
    if mode == "floor":
        argv = [str(BENCH / "floor_server.py"), "--port", str(port)]
    else:
        argv = [str(BENCH / "reference_server.py"), "--mode", mode, "--port", str(port)]
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        yield port
    finally:
        stop(proc)


@dataclass
class EngineProcess:
    proc: subprocess.Popen[bytes]
    port: int
    db_path: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self, key: str = "VmRSS") -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def delivered(self) -> int:
        return count_delivered(self.db_path)


def count_delivered(db_path: Path) -> int:
    """Messages delivered; raises PipelineFailure as soon as one ended in FAILED_STATES."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        failed = conn.execute(
            "SELECT state, count(*) FROM journal_messages WHERE state IN (?, ?, ?) GROUP BY state",
            FAILED_STATES,
        ).fetchall()
        row = conn.execute(
            "SELECT count(*) FROM journal_messages WHERE state = 'delivered'"
        ).fetchone()
    finally:
        conn.close()
    if failed:
        raise PipelineFailure(db_path, {str(s): int(n) for s, n in failed})
    return int(row[0])


class PipelineFailure(RuntimeError):
    """Messages the pipeline held, sent to identity review or dead-lettered: the figures would
    not measure the pipeline filing results."""

    def __init__(self, db_path: Path, failed: dict[str, int]) -> None:
        super().__init__(
            f"journal messages not delivered: {failed}; all states {count_states(db_path)}; "
            f"first errors: {first_errors(db_path)}"
        )


def first_errors(db_path: Path, limit: int = 3) -> list[tuple[str, str, str]]:
    """(state, error code, reason) of the first failed messages, for the failure message."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute(
            "SELECT state, error_code, error_reason FROM journal_messages WHERE state IN "
            "(?, ?, ?) ORDER BY id LIMIT ?",
            (*FAILED_STATES, limit),
        )
        return [(str(s), str(c), str(r)) for s, c, r in rows]
    finally:
        conn.close()


def count_states(db_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT state, count(*) FROM journal_messages GROUP BY state")
        return {str(s): int(n) for s, n in rows}
    finally:
        conn.close()


#: Engine settings given on the command line (``--pipeline-share``).
ENGINE_OVERRIDES: dict[str, Any] = {}


def engine_config(
    tmp: Path, port: int, durability: str | None, pipeline: str | None = None
) -> tuple[Path, Path]:
    with open(ROOT / "channels.yaml") as f:
        config = yaml.safe_load(f)
    db_path = tmp / "bench.db"
    config["engine"]["database_url"] = f"sqlite:///{db_path}"
    config["engine"]["log_level"] = "warning"
    if durability is not None:
        config["engine"]["durability"] = durability
    if pipeline is not None:
        config["engine"]["pipeline"] = pipeline
    config["engine"].update(ENGINE_OVERRIDES)
    mllp = [c for c in config["channels"] if c["source"]["type"] == "mllp"]
    for c in config["channels"]:
        if c not in mllp[:1]:
            c["enabled"] = False
    mllp[0]["source"]["port"] = port
    mllp[0]["source"]["host"] = "127.0.0.1"
    # Ports of their own: another engine (a second bench, a test) may hold the configured ones.
    for listener in ("admin", "record_api"):
        if isinstance(config["engine"].get(listener), dict):
            config["engine"][listener]["port"] = free_port()
    path = tmp / "channels.yaml"
    with open(path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False, allow_unicode=True)
    return path, db_path


@contextlib.contextmanager
def launch(
    tmp: Path, config_path: Path, db_path: Path, ports: Sequence[int]
) -> Iterator[EngineProcess]:
    """``aiguillage run`` on ``config_path`` (cwd ``tmp``, log in tmp/engine.log) until the block
    ends, once every port in ``ports`` accepts connections (the first is ``EngineProcess.port``)."""
    env = {k: v for k, v in os.environ.items() if k != "AIGUILLAGE_DATABASE_URL"}
    log_path = tmp / "engine.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "aiguillage"), "run", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env=env,
        )
    try:
        for port in ports:
            wait_listening(port, proc)
        yield EngineProcess(proc, ports[0], db_path, log_path)
    finally:
        stop(proc)
        if proc.returncode not in (0, -signal.SIGTERM):
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])


@contextlib.contextmanager
def engine(durability: str | None, pipeline: str | None = None) -> Iterator[EngineProcess]:
    tmp = Path(tempfile.mkdtemp(prefix="aiguillage-bench-"))
    port = free_port()
    config_path, db_path = engine_config(tmp, port, durability, pipeline)
    try:
        with launch(tmp, config_path, db_path, (port,)) as eng:
            register_patients(eng)
            yield eng
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def register_patients(eng: EngineProcess) -> None:
    """Untimed: one ADT^A28 per pool patient, delivered before any result is sent (the engine
    holds results for patients it does not know)."""
    started = time.perf_counter()
    load = engine_load(eng, registrations(POOL_SIZE), 16)
    _check(load, "patient registration")
    if load.delivered_at is None:
        raise RuntimeError("the patient registrations (ADT^A28) were not all delivered")
    log(f"{POOL_SIZE:,} patients registered (ADT^A28) in {time.perf_counter() - started:.1f} s")


def engine_load(
    eng: EngineProcess,
    messages: Sequence[bytes],
    connections: int,
    window: int = 1,
    rss_every: float | None = None,
    drain_timeout: float = 600,
) -> Load:
    """Drive the engine and wait until the journal shows every message of this step delivered."""
    baseline = eng.delivered()
    target = baseline + len(messages)
    samples: list[tuple[float, int]] = []
    last_sample = [0.0]

    def sample() -> None:
        now = time.perf_counter()
        if rss_every is not None and now - last_sample[0] >= rss_every:
            samples.append((now, eng.rss_kb()))
            last_sample[0] = now
            if len(samples) % progress_every == 0:  # a long run's progress, in case it is cut
                log(f"RSS {samples[-1][1] / 1024:.1f} MB, peak {eng.rss_kb('VmHWM') / 1024:.1f}")

    progress_every = max(1, round(30 / rss_every)) if rss_every else 1
    load = run_load(eng.port, messages, connections, window, on_tick=sample)
    load.delivered_while_sending = eng.delivered() - baseline
    deadline = time.monotonic() + drain_timeout
    delivered_at: float | None = None
    while time.monotonic() < deadline:
        if eng.delivered() >= target:
            delivered_at = time.perf_counter()
            break
        sample()
        time.sleep(0.02 if rss_every is None else min(0.02, rss_every))
    sample()
    load.delivered_at = delivered_at
    load.samples = samples
    if delivered_at is None:
        sys.stderr.write(f"pipeline did not drain: {count_states(eng.db_path)}\n")
    return load


def check_all_delivered(db_path: Path, what: str) -> dict[str, int]:
    """The journal's states; raises unless every message is ``delivered``."""
    states = count_states(db_path)
    if set(states) != {"delivered"}:
        raise RuntimeError(f"{what}: journal states {states}, not all delivered")
    return states


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Batches:
    """Distinct messages for every step (MSH-10 never repeats within one engine database)."""

    size: int
    seed: int = 2575
    next_start: int = 0

    def take(self, count: int) -> list[bytes]:
        msgs = generate(count, seed=self.seed + self.next_start, start=self.next_start)
        self.next_start += count
        return msgs


def log(text: str) -> None:
    sys.stderr.write(f"[{datetime.now():%H:%M:%S}] {text}\n")
    sys.stderr.flush()


def one_run(args: argparse.Namespace, index: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    batches = Batches(args.messages, next_start=index * 10_000_000)
    # 1. client ceiling
    msgs = batches.take(args.messages)
    with reference_server("null") as port:
        load = run_load(port, msgs, 16)
    out["client_ceiling_rate_16"] = load.rate
    log(f"run {index + 1}: null server, 16 connections: {load.rate:,.0f} msg/s")
    # 2. references: python-hl7 (parse + ACK, nothing stored), then the floor (durable)
    for mode, prefix, count in (
        ("hl7", "reference", args.reference_messages),
        ("floor", "floor", args.messages),
    ):
        with reference_server(mode) as port:
            for conns in (1, 16):
                load = run_load(port, msgs[:count], conns)
                _check(load, prefix)
                out[f"{prefix}_rate_{conns}"] = load.rate
                out[f"{prefix}_ack_p50_ms_{conns}"] = load.latency(0.50)
                out[f"{prefix}_ack_p99_ms_{conns}"] = load.latency(0.99)
                log(
                    f"run {index + 1}: {prefix}, {conns} connection(s): {load.rate:,.0f} msg/s, "
                    f"p99 {load.latency(0.99):.1f} ms"
                )
    # 3. engine
    with engine(args.durability, args.pipeline) as eng:
        for conns, window, tag in ((1, 1, "1"), (16, 1, "16"), (16, args.window, "16_pipelined")):
            load = engine_load(eng, batches.take(args.messages), conns, window)
            _check(load, "engine")
            out[f"intake_rate_{tag}"] = load.rate
            out[f"pipeline_rate_{tag}"] = load.pipeline_rate()
            out[f"pipeline_rate_while_sending_{tag}"] = load.pipeline_rate_while_sending()
            out[f"ack_p50_ms_{tag}"] = load.latency(0.50)
            out[f"ack_p99_ms_{tag}"] = load.latency(0.99)
            out[f"ack_max_ms_{tag}"] = max(load.latencies_ms)
            log(
                f"run {index + 1}: engine, {conns} connection(s), window {window}: intake "
                f"{load.rate:,.0f} msg/s, pipeline {load.pipeline_rate() or 0:,.0f} msg/s "
                f"({load.pipeline_rate_while_sending():,.0f} while sending), "
                f"p99 {load.latency(0.99):.1f} ms"
            )
        out["engine_rss_mb_after_run"] = eng.rss_kb() / 1024
        states = check_all_delivered(eng.db_path, f"run {index + 1}")
        log(f"run {index + 1}: journal states {states}")
    return out


def _check(load: Load, what: str) -> None:
    if load.acked != load.messages or load.naks:
        raise RuntimeError(f"{what}: {load.acked}/{load.messages} ACKed, {load.naks} negative ACKs")


def long_run(args: argparse.Namespace) -> dict[str, Any]:
    count = args.long_messages
    log(f"long run: generating {count:,} messages")
    msgs = Batches(count, next_start=900_000_000).take(count)
    with engine(args.durability, args.pipeline) as eng:
        idle_kb = eng.rss_kb()
        log("long run: sending at 16 connections")
        # The pipeline drains the backlog after intake: allow for it (1,000,000: ~3 hours).
        drain = max(600.0, count / 100)
        load = engine_load(eng, msgs, 16, 1, rss_every=0.25, drain_timeout=drain)
        hwm_kb = eng.rss_kb("VmHWM")
        states = check_all_delivered(eng.db_path, "long run")
    samples = load.samples
    t0 = samples[0][0]
    t1 = samples[-1][0]
    tenth = (t1 - t0) / 10
    first = [kb for t, kb in samples if t <= t0 + tenth]
    last = [kb for t, kb in samples if t >= t1 - tenth]
    first_mb = statistics.median(first) / 1024
    last_mb = statistics.median(last) / 1024
    growth = 100 * (last_mb - first_mb) / first_mb
    return {
        "messages": count,
        "connections": 16,
        "intake_rate": load.rate,
        "pipeline_rate": load.pipeline_rate(),
        "pipeline_rate_while_sending": load.pipeline_rate_while_sending(),
        "ack_p50_ms": load.latency(0.5),
        "ack_p99_ms": load.latency(0.99),
        "seconds_to_all_delivered": (
            None if load.delivered_at is None else load.delivered_at - load.first_send
        ),
        "journal_states": states,
        "rss_mb_idle_before": idle_kb / 1024,
        "rss_samples": len(samples),
        "rss_sample_interval_s": 0.25,
        "peak_rss_mb": hwm_kb / 1024,
        "peak_rss_mb_sampled": max(kb for _, kb in samples) / 1024,
        "rss_median_mb_first_tenth": first_mb,
        "rss_median_mb_last_tenth": last_mb,
        "rss_growth_pct_first_to_last_tenth": growth,
        "rss_timeline_mb": [
            [round(t - t0, 2), round(kb / 1024, 1)]
            for t, kb in samples[:: max(1, len(samples) // 40)]
        ],
    }


def profile_run(args: argparse.Namespace, results: Path, stamp: str) -> dict[str, Any]:
    """One 16-connection step with py-spy attached to the engine (figures not comparable)."""
    py_spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    out = results / f"{stamp}-py-spy{'-idle' if args.profile_idle else ''}.txt"
    msgs = Batches(args.messages, next_start=800_000_000).take(args.messages)
    with engine(args.durability, args.pipeline) as eng:
        spy = subprocess.Popen(
            [
                *(py_spy, "record", "--pid", str(eng.pid), "--format", "raw", "--threads"),
                *("--rate", str(args.profile_rate), "--nonblocking", "--output", str(out)),
                *(("--idle",) if args.profile_idle else ()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        load = engine_load(eng, msgs, 16, 1)
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    return {
        "collapsed_stacks": str(out.relative_to(ROOT)),
        "idle_samples_included": args.profile_idle,
        "intake_rate_under_profiler": load.rate,
        "pipeline_rate_under_profiler": load.pipeline_rate(),
    }


# -- report -------------------------------------------------------------------------------------


def source_state() -> dict[str, Any]:
    """The engine code measured: the engine runs from the working tree (editable install)."""

    def git(*argv: str) -> str:
        try:
            return subprocess.run(
                ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.rstrip()  # porcelain lines start with a space
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "engine").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "engine_files_modified": dirty}


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--messages", type=int, default=5_000, help="per engine and floor step (long: 20000)"
    )
    parser.add_argument(
        "--reference-messages", type=int, default=1_500, help="per python-hl7 step (it is slow)"
    )
    parser.add_argument("--window", type=int, default=8, help="in flight per pipelined conn")
    parser.add_argument("--long", action="store_true", help="add the 100,000-message RSS run")
    parser.add_argument("--long-messages", type=int, default=100_000)
    parser.add_argument("--durability", choices=("full", "normal"), default=None)
    parser.add_argument(
        "--pipeline", choices=("thread", "process"), default=None, help="engine.pipeline"
    )
    parser.add_argument(
        "--pipeline-share", type=float, help="engine.pipeline_share (default: the engine's)"
    )
    parser.add_argument("--profile", action="store_true", help="add a py-spy profiled step")
    parser.add_argument("--profile-rate", type=int, default=250)
    parser.add_argument("--profile-idle", action="store_true", help="py-spy --idle (wall time)")
    args = parser.parse_args()
    if args.pipeline_share is not None:
        ENGINE_OVERRIDES["pipeline_share"] = args.pipeline_share

    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    with open(ROOT / "channels.yaml") as f:
        configured = yaml.safe_load(f)["engine"].get("durability", "full")
    sample = generate(1000)
    sizes = [len(m) for m in sample]
    report: dict[str, Any] = {
        "benchmark": "mllp_ingest",
        "started_at": stamp,
        "machine": machine(),
        "source": source_state(),
        "note": (
            "client processes, the server under test and the SQLite writer share the same "
            f"{os.cpu_count()} cores: every figure includes that contention"
        ),
        "setup": {
            "runs": args.runs,
            "messages_per_engine_step": args.messages,
            "messages_per_reference_step": args.reference_messages,
            "message": {
                "type": "ORU^R01 v2.5",
                "obx": 10,
                "bytes_mean": statistics.fmean(sizes),
                "bytes_min": min(sizes),
                "bytes_max": max(sizes),
                "distinct_patients_pool": POOL_SIZE,
                "identity": "PID-3 IPP (PI, CHU-X) + INS (test NIR OID), PID-5 typed L, "
                "PID-32 VALI: the INS is used (INS lookup, local lookup, trait comparison)",
            },
            "patients_registered_first": f"{POOL_SIZE} ADT^A28 per engine, untimed, "
            "delivered before the first timed step (unknown patients' results are held)",
            "sender": "synchronous: each connection sends its next message after the ACK",
            "pipelined_window": args.window,
            "client_processes_at_16": math.ceil(16 / CONNECTIONS_PER_CLIENT_PROCESS),
            "engine": {
                "durability": args.durability or configured,
                "pipeline": args.pipeline or "as channels.yaml",
                "settings_given": dict(ENGINE_OVERRIDES),
                "log_level": "warning",
                "database": "fresh SQLite file (WAL) in a temporary directory",
                "config": "repo channels.yaml, port and database changed",
            },
            "reference": "python-hl7 start_hl7_server(encoding='utf-8', limit=64 MiB) + "
            "hl7.parse + create_ack(), nothing stored",
            "floor": "bench/floor_server.py: asyncio MLLP, MSH cut by byte search, each frame "
            "a row in SQLite (WAL, synchronous=FULL), group commit by one writer thread, ACK "
            f"after the commit; {args.messages} messages a step",
        },
    }
    runs: list[dict[str, float | None]] = []
    for i in range(args.runs):
        runs.append(one_run(args, i))
    if runs:
        metrics: dict[str, Any] = {}
        for key in runs[0]:
            values = [r.get(key) for r in runs]
            metrics[key] = {
                "runs": [None if v is None else round(v, 2) for v in values],
                "median": median_or_none(values),
            }
        report["metrics"] = metrics

        def med(key: str) -> float:
            value = metrics[key]["median"]
            return math.nan if value is None else float(value)

        ref16, floor16 = med("reference_rate_16"), med("floor_rate_16")
        ratios = {
            "intake_16_vs_floor_16": med("intake_rate_16") / floor16,
            "intake_1_vs_floor_1": med("intake_rate_1") / med("floor_rate_1"),
            "intake_16_vs_reference_16": med("intake_rate_16") / ref16,
            "intake_1_vs_reference_1": med("intake_rate_1") / med("reference_rate_1"),
            "pipeline_16_vs_floor_16": med("pipeline_rate_16") / floor16,
            "pipeline_16_vs_reference_16": med("pipeline_rate_16") / ref16,
            "intake_16_pipelined_vs_floor_16": med("intake_rate_16_pipelined") / floor16,
            "client_ceiling_vs_intake_16": med("client_ceiling_rate_16") / med("intake_rate_16"),
            "client_ceiling_vs_floor_16": med("client_ceiling_rate_16") / floor16,
        }
        # Medians of the per-run ratios too: each run's engine against that run's references.
        for name, num, den in (
            ("intake_16_vs_floor_16", "intake_rate_16", "floor_rate_16"),
            ("intake_1_vs_floor_1", "intake_rate_1", "floor_rate_1"),
            ("intake_16_vs_reference_16", "intake_rate_16", "reference_rate_16"),
            ("intake_1_vs_reference_1", "intake_rate_1", "reference_rate_1"),
        ):
            per_run = [_ratio(r.get(num), r.get(den)) for r in runs]
            ratios[f"{name}_median_of_runs"] = median_or_none(per_run) or math.nan
            metrics[f"ratio_{name}"] = {"runs": per_run, "median": median_or_none(per_run)}
        report["ratios"] = ratios
        report["targets"] = {
            "intake_rate_16 >= 5000 msg/s": _target(med("intake_rate_16"), 5000, ">="),
            "intake_16 >= 0.35 x floor_16": _target(ratios["intake_16_vs_floor_16"], 0.35, ">="),
            "intake_1 >= 0.5 x floor_1": _target(ratios["intake_1_vs_floor_1"], 0.5, ">="),
            "ack_p99_ms_16 <= 15 ms (durability full)": _target(med("ack_p99_ms_16"), 15, "<="),
            "pipeline_rate_16 >= 3000 msg/s": _target(med("pipeline_rate_16"), 3000, ">="),
        }
    if args.long:
        report["long"] = long_run(args)
        lr = report["long"]
        report.setdefault("targets", {})
        report["targets"]["peak_rss_mb <= 200 (long run)"] = _target(lr["peak_rss_mb"], 200, "<=")
        report["targets"]["rss growth first->last tenth <= 5% (long run)"] = _target(
            lr["rss_growth_pct_first_to_last_tenth"], 5, "<="
        )
    if args.profile:
        report["profile"] = profile_run(args, results_dir, stamp)
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    report["duration_seconds"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    (results_dir / f"{stamp}.json").write_text(text + "\n")
    print(text)


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or not den else round(num / den, 4)


def _target(value: float, target: float, op: str) -> dict[str, Any]:
    met = value >= target if op == ">=" else value <= target
    return {"value": round(value, 2), "target": f"{op} {target:g}", "met": bool(met)}


if __name__ == "__main__":
    main()
