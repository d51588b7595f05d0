"""HL7 v2 batches: what the single-message path pays for batch detection, and what a batch
frame buys over one frame per message.

Part 1, ``detection`` (in process): ``MessageRules.prepare`` of the bench ORU^R01
(bench/generate.py, about 1.6 KB) on a channel with ``batches: accept`` (the default: each
message is looked at for a second MSH or a BTS/FTS trailer) against the same channel with
``batches: refuse`` (the reference: the path as it was before batches), in interleaved rounds;
µs per message, ratio.

Part 2, ``mllp`` (the engine in this process on a fresh SQLite database, ``durability: full``,
the pipeline on into a file destination): ``--messages`` ORU^R01 sent on one connection as one
frame per message, each waiting for its ACK (the reference), then as batch frames of
``--batch-size`` messages, each waiting for its batch acknowledgement; messages per second
from the first send to the last answer, ratio.

``python bench/batches.py [--runs 3] [--messages 1000] [--batch-size 100]``
Progress on stderr; JSON on stdout (medians of the runs), also saved to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import generate as gen  # noqa: E402
import mllp_ingest as mi  # noqa: E402
from common import save_report  # noqa: E402

from engine.adapters.mllp_framing import END_BLOCK, frame  # noqa: E402
from engine.channels.loader import parse_channels  # noqa: E402
from engine.hl7v2.batch import holds_several  # noqa: E402
from engine.intake.batches import prepare_batch  # noqa: E402
from engine.intake.rules import MessageRules  # noqa: E402
from engine.runtime.wiring import Engine  # noqa: E402

CHANNELS = """
engine:
  database_url: sqlite:///{db}
  durability: full
  log_level: warning
channels:
  - name: lab
    source: {{type: mllp, port: {port}}}
    accept: ["ORU^R01"]
    destinations: {{archive: {{type: file, directory: {out}}}}}
"""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def detection(messages: list[bytes], rounds: int = 30) -> dict[str, float]:
    """µs per prepared message with batch detection on and off (medians of the rounds, the
    order of the two alternating), and the detection alone (``holds_several``)."""
    on = MessageRules("lab", ("ORU^R01",), "UNICODE UTF-8", batches=prepare_batch)
    off = MessageRules("lab", ("ORU^R01",), "UNICODE UTF-8")

    def per_message(intake: MessageRules) -> float:
        start = time.perf_counter()
        for payload in messages:
            intake.prepare(payload, "bench")
        return (time.perf_counter() - start) / len(messages) * 1e6

    per_message(on), per_message(off)  # warm up
    with_detection, reference, alone = [], [], []
    texts = [m.decode("utf-8") for m in messages]
    for n in range(rounds):
        if n % 2:
            reference.append(per_message(off))
            with_detection.append(per_message(on))
        else:
            with_detection.append(per_message(on))
            reference.append(per_message(off))
        start = time.perf_counter()
        for text in texts:
            holds_several(text)
        alone.append((time.perf_counter() - start) / len(texts) * 1e6)
    a, b = statistics.median(with_detection), statistics.median(reference)
    return {
        "batches_accept_us": a,
        "batches_refuse_us": b,
        "ratio": a / b,
        "detection_alone_us": statistics.median(alone),
    }


class InProcess:
    def __init__(self, tmp: Path) -> None:
        self.port = mi.free_port()
        text = CHANNELS.format(db=tmp / "b.db", port=self.port, out=tmp / "out")
        self.engine = Engine(parse_channels(text))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.engine.start(), self.loop).result(60)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.engine.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def exchange(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(frame(payload))
    data = b""
    while END_BLOCK not in data:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def as_batches(messages: list[bytes], size: int) -> list[bytes]:
    frames = []
    for start in range(0, len(messages), size):
        part = messages[start : start + size]
        header = f"BHS|^~\\&|LAB|CHU|AIG|CHU|20250301||||BATCH{start}".encode()
        frames.append(b"\r".join([header, *part, f"BTS|{len(part)}".encode()]))
    return frames


def timed(frames: list[bytes], expect: Callable[[bytes], int]) -> float:
    """Seconds from the first send to the last answer on one connection, on a fresh engine;
    ``expect`` counts the AA in an answer (every message must be accepted)."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        eng = InProcess(Path(tmp))
        try:
            accepted = 0
            with socket.create_connection(("127.0.0.1", eng.port), timeout=120) as sock:
                start = time.perf_counter()
                for payload in frames:
                    accepted += expect(exchange(sock, payload))
                elapsed = time.perf_counter() - start
        finally:
            eng.stop()
    return elapsed if accepted else float("nan")


def mllp(messages: list[bytes], batch_size: int) -> dict[str, float]:
    def count_aa(answer: bytes) -> int:
        return answer.count(b"\rMSA|AA|")

    singles = timed(messages, count_aa)
    batches = timed(as_batches(messages, batch_size), count_aa)
    n = len(messages)
    return {
        "singles_msg_per_s": n / singles,
        "batches_msg_per_s": n / batches,
        "ratio": singles / batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    messages = gen.generate(args.messages)
    runs: list[dict[str, Any]] = []
    for index in range(args.runs):
        log(f"run {index + 1}/{args.runs}: detection")
        run: dict[str, Any] = {"detection": detection(messages[:500])}
        log(f"run {index + 1}/{args.runs}: mllp")
        run["mllp"] = mllp(messages, args.batch_size)
        runs.append(run)
    medians = {
        part: {k: statistics.median(r[part][k] for r in runs) for k in runs[0][part]}
        for part in ("detection", "mllp")
    }
    report = {
        "benchmark": "batches",
        "started_at": stamp,
        "machine": {**mi.machine(), "loadavg_at_end": list(os.getloadavg())},
        "source": mi.source_state(),
        "setup": {**vars(args), "message_bytes": statistics.median(len(m) for m in messages)},
        "runs": runs,
        "medians": medians,
    }
    out = json.dumps(report, indent=2)
    save_report(out, stamp, "batches")
    print(out)


if __name__ == "__main__":
    main()
