"""The journal append alone: CPU per appended row, on the real schema (migrations to heads).

Messages are generated ORU^R01 (``generate.py``), made into journal rows before timing as
intake makes them for an MLLP channel (MSH fields, sender, patient key from PID-3); then
``Journal.append`` runs on batches of ``--batch`` rows, one transaction each, as the group
committer hands them to the writer. Timed around each append (commit included): this
process's CPU (``time.process_time``: Python, SQLAlchemy, the driver, and SQLite's own B-tree
work), wall time, and on PostgreSQL the server backend's CPU (``/proc/<backend pid>/stat``,
the server runs on this machine). ``--prefill`` rows are appended first, untimed, so that the
indexes are as deep as a journal in service.

``python bench/journal_append.py [--backend sqlite|postgresql] [--messages 8000] [--batch 16]
[--rounds 3] [--prefill 20000] [--durability full|normal] [--profile]``

Output: JSON on stdout (medians of the rounds, and each round).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from common import postgres_schema  # noqa: E402
from generate import generate  # noqa: E402

from engine.db import make_engine  # noqa: E402
from engine.hl7v2.reader import Message  # noqa: E402
from engine.journal.journal import Journal  # noqa: E402
from engine.journal.records import NewMessage  # noqa: E402
from engine.migrate import upgrade  # noqa: E402
from engine.transforms.patient_key import patient_key  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def database(backend: str, durability: str, drop: tuple[str, ...] = ()) -> Iterator[Engine]:
    """A fresh database with the engine's schema: a temporary SQLite file, or a PostgreSQL
    schema of its own (dropped afterwards); without the indexes named in ``drop`` (what each
    costs the append)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="journal-append-") as tmp:
            db = make_engine(f"sqlite:///{tmp}/journal.db", durability=durability)
            try:
                upgrade(db)
                _drop_indexes(db, drop)
                yield db
            finally:
                db.dispose()
        return
    with postgres_schema("bench_append") as db:
        upgrade(db)
        _drop_indexes(db, drop)
        yield db


def _drop_indexes(db: Engine, names: tuple[str, ...]) -> None:
    with db.begin() as conn:
        for name in names:
            conn.execute(text(f"DROP INDEX {name}"))


def prepared_rows(count: int, start: int, channel: str = "bench") -> list[NewMessage]:
    """Journal rows for ``count`` new messages (MSH-10 from ``start`` on), as intake fills them."""
    rows = []
    for raw in generate(count, seed=start + 7, start=start):
        text = raw.decode("utf-8")
        msh = text[: text.index("\r")].split("|")
        kind, trigger = msh[8].split("^")[:2]
        rows.append(
            NewMessage(
                channel=channel,
                raw=raw,
                peer="127.0.0.1:5000",
                sender=f"{channel}:{msh[2]}^{msh[3]}",
                charset="UTF-8",
                sender_app=msh[2],
                sender_facility=msh[3],
                control_id=msh[9],
                message_type=kind,
                trigger=trigger,
                patient_key=patient_key(Message(text)),
            )
        )
    return rows


def backend_cpu(conn: Any) -> float | None:
    """Seconds of CPU the PostgreSQL backend serving ``conn`` has used (None: not readable)."""
    if conn.dialect.name != "postgresql":
        return None
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    conn.commit()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def one_round(db: Engine, rows: list[NewMessage], batch: int, profile: bool) -> dict[str, Any]:
    journal = Journal(db)
    batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    profiler = cProfile.Profile() if profile else None
    with db.connect() as conn:
        server_before = backend_cpu(conn)
        cpu = wall = 0.0
        for chunk in batches:
            if profiler is not None:
                profiler.enable()
            c0, w0 = time.process_time(), time.perf_counter()
            results = journal.append(conn, chunk)
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            if profiler is not None:
                profiler.disable()
            assert not any(r.duplicate for r in results)
        server_after = backend_cpu(conn)
    out: dict[str, Any] = {
        "cpu_us_per_row": round(cpu / len(rows) * 1e6, 1),
        "wall_us_per_row": round(wall / len(rows) * 1e6, 1),
    }
    if server_before is not None and server_after is not None:
        out["server_cpu_us_per_row"] = round((server_after - server_before) / len(rows) * 1e6, 1)
    if profiler is not None:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(35)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--messages", type=int, default=8000, help="timed rows per round")
    parser.add_argument("--batch", type=int, default=16, help="rows per append (commit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefill", type=int, default=20000, help="untimed rows first")
    parser.add_argument("--durability", choices=("full", "normal"), default="full")
    parser.add_argument("--profile", action="store_true", help="cProfile of the last round")
    parser.add_argument(
        "--drop-index", action="append", default=[], help="index to drop first (repeatable)"
    )
    args = parser.parse_args()
    rounds = []
    with database(args.backend, args.durability, tuple(args.drop_index)) as db:
        start = 0
        if args.prefill:
            journal = Journal(db)
            fill = prepared_rows(args.prefill, start)
            start += args.prefill
            with db.connect() as conn:
                for i in range(0, len(fill), 256):
                    journal.append(conn, fill[i : i + 256])
        for index in range(args.rounds):
            rows = prepared_rows(args.messages, start)
            start += args.messages
            last = index == args.rounds - 1
            rounds.append(one_round(db, rows, args.batch, args.profile and last))
    keys = rounds[0].keys()
    medians = {k: statistics.median(r[k] for r in rounds) for k in keys}
    print(json.dumps({"args": vars(args), "median": medians, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
