"""'The floor': what durable MLLP intake costs at the least in Python on this machine.

A minimal asyncio MLLP server (run as a subprocess by mllp_ingest.py), the second reference
next to python-hl7's server:

* frames are cut on ``<FS><CR>``; the MSH is cut by byte search (MSH-3, -4, -5, -6, -9, -10,
  -12), nothing is decoded or parsed beyond that;
* each frame is journaled as one row (sender, control id, type, size, raw bytes) in a SQLite
  table, WAL mode, ``synchronous=FULL`` (a commit is on disk before its ACK: power-loss safe);
* one writer thread owns the SQLite connection and commits every frame waiting in one
  transaction (group commit); the event loop hands it one batch per loop turn and is told once
  per commit (one ``call_soon_threadsafe``);
* each frame's ACK (``MSA|AA|<MSH-10>``, built by byte concatenation) is written after its
  commit, in the order the frames came on each connection.

It checks nothing (no character set, no duplicates, no limits, no metrics, no logs): the
engine's contracts cost what they cost on top of this. The table has no index but its row id.

``--database PATH`` (default: a file in a temporary directory, removed at exit). Prints
``ready <port>`` on stdout once listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable

START, END = b"\x0b", b"\x1c\r"
Row = tuple[bytes, bytes, bytes, int, bytes]
Answer = tuple["FloorProtocol", bytes]
Batch = tuple[list[Row], list[Answer]]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS frames (id INTEGER PRIMARY KEY, received_at REAL NOT NULL, "
    "sender BLOB, control_id BLOB, message_type BLOB, size INTEGER NOT NULL, raw BLOB NOT NULL)"
)
INSERT = (
    "INSERT INTO frames (received_at, sender, control_id, message_type, size, raw) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def cut_header(frame: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(sender, control id, message type, ACK bytes) of one frame, by byte search."""
    start = frame.find(b"MSH")
    end = frame.find(b"\r", start)
    msh = frame[start : end if end >= 0 else len(frame)] if start >= 0 else b""
    sep = msh[3:4] or b"|"
    fields = msh.split(sep)
    fields += [b""] * (12 - len(fields))
    # fields[0] is "MSH", fields[1] MSH-2: fields[n - 1] is MSH-n.
    control_id, msg_type, version = fields[9], fields[8], fields[11]
    trigger = msg_type.split(b"^")[1] if b"^" in msg_type else b""
    now = time.strftime("%Y%m%d%H%M%S").encode()
    ack = b"".join(
        (
            START,
            b"MSH|^~\\&|",
            fields[4],
            b"|",
            fields[5],
            b"|",
            fields[2],
            b"|",
            fields[3],
            b"|",
            now,
            b"||ACK^",
            trigger,
            b"^ACK|",
            control_id,
            b"|P|",
            version or b"2.5",
            b"\rMSA|AA|",
            control_id,
            b"\r",
            END,
        )
    )
    return fields[2] + b"^" + fields[3], control_id, msg_type, ack


class Writer:
    """The one thread that owns the SQLite connection: group commit of all waiting batches."""

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self.loop = loop
        self.jobs: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self.run, name="floor-writer", daemon=True)

    def run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(SCHEMA)
        stopping = False
        while not stopping:
            jobs = [self.jobs.get()]
            while True:
                try:
                    jobs.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            if None in jobs:
                stopping = True
            batches = [job for job in jobs if job is not None]
            if not batches:
                continue
            now = time.time()
            rows = [(now, *row[:3], row[3], row[4]) for rows, _ in batches for row in rows]
            db.execute("BEGIN")
            db.executemany(INSERT, rows)
            db.execute("COMMIT")
            answers = [answer for _, batch_answers in batches for answer in batch_answers]
            self.loop.call_soon_threadsafe(_answer, answers)
        db.close()


def _answer(answers: list[Answer]) -> None:
    for proto, ack in answers:
        proto.write(ack)


class Intake:
    """Collects the frames of one loop turn, hands them to the writer as one batch."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.rows: list[Row] = []
        self.answers: list[Answer] = []
        self.scheduled = False

    def take(self, proto: FloorProtocol, frame: bytes) -> None:
        sender, control_id, msg_type, ack = cut_header(frame)
        self.rows.append((sender, control_id, msg_type, len(frame), frame))
        self.answers.append((proto, ack))
        if not self.scheduled:
            self.scheduled = True
            self.writer.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if self.rows:
            self.writer.jobs.put((self.rows, self.answers))
            self.rows, self.answers = [], []


class FloorProtocol(asyncio.Protocol):
    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        if END not in buf:
            self.buffer = buf
            return
        frames = buf.split(END)
        self.buffer = frames.pop()
        for frame in frames:
            start = frame.find(START)
            if start >= 0:
                self.intake.take(self, frame[start + 1 :])

    def write(self, ack: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ack)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, path: str) -> None:
    loop = asyncio.get_running_loop()
    writer = Writer(path, loop)
    writer.thread.start()
    intake = Intake(writer)
    factory: Callable[[], FloorProtocol] = lambda: FloorProtocol(intake)  # noqa: E731
    server = await loop.create_server(factory, "127.0.0.1", port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(f"ready {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    await stop.wait()
    server.close()
    writer.jobs.put(None)
    await asyncio.to_thread(writer.thread.join, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database", help="SQLite file (default: a temporary one)")
    args = parser.parse_args()
    tmp = None if args.database else tempfile.mkdtemp(prefix="floor-")
    path = args.database or os.path.join(tmp or "", "floor.db")
    try:
        asyncio.run(serve(args.port, path))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
