"""Pipeline benchmark: the worker alone (no MLLP), batched against one message at a time.

On SQLite and PostgreSQL (a fresh schema), ``--patients`` qualified patients are bulk-loaded
(bench/identify.py's loaders), then each run journals ``--messages`` generated ORU^R01 (10 OBX,
IPP + INS + VALI, random registered patients) as intake builds them (untimed) and times
``Worker.run_once`` until every one is ``delivered``. Two variants a round, alternating which
goes first:

* ``batched``: the engine as it is (one transaction per claimed batch, no savepoint, the
  batch's observation rows and end states in one statement each);
* ``per_message`` (the reference, same code base): ``Worker(batched=False)``, the earlier
  path (a SAVEPOINT and its RELEASE around each message, observations inserted per message).

Each run also counts the statements sent to the database per batch (DBAPI ``execute`` and
``executemany`` calls, commits included): on PostgreSQL each is one network round trip
(psycopg 3 sends an ``executemany`` in pipeline mode, one round trip).

``--profile`` adds one cProfile'd batched run on SQLite (top functions by cumulative time).

``python bench/pipeline_batch.py [--runs 3] [--messages 5000] [--patients 20000]``; JSON on
stdout, also saved to bench/results/<timestamp>-pipeline.json; progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import identify as ib  # noqa: E402
import mllp_ingest as mi  # noqa: E402
from common import Unreachable, save_report  # noqa: E402

from engine import fastsql, logs  # noqa: E402
from engine.channels.loader import load_channels  # noqa: E402
from engine.intake.inbox import rules_for  # noqa: E402
from engine.intake.rules import MessageRules  # noqa: E402
from engine.journal.message_tables import State  # noqa: E402
from engine.migrate import upgrade  # noqa: E402
from engine.pipeline.worker import Worker  # noqa: E402
from engine.runtime.wiring import build_worker  # noqa: E402

log = ib.log
VARIANTS = ("batched", "per_message")


class Counter:
    """Statements the worker sends (DBAPI execute/executemany calls and commits)."""

    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0


@contextlib.contextmanager
def counting(db: Any, counter: Counter) -> Iterator[None]:
    """Count every statement: SQLAlchemy's own (cursor events) and the fast path's (its
    cursors wrapped), and every commit."""
    from sqlalchemy import event

    def on_execute(*_a: Any) -> None:
        counter.statements += 1

    def on_commit(*_a: Any) -> None:
        counter.commits += 1

    original = fastsql._cursor

    def wrapped(conn: Any) -> Any:
        return _CountingCursor(original(conn), counter)

    event.listen(db, "before_cursor_execute", on_execute)
    event.listen(db, "commit", on_commit)
    try:
        with mock.patch.object(fastsql, "_cursor", wrapped):
            yield
    finally:
        event.remove(db, "before_cursor_execute", on_execute)
        event.remove(db, "commit", on_commit)


class _CountingCursor:
    def __init__(self, cursor: Any, counter: Counter) -> None:
        self._cursor = cursor
        self._counter = counter

    def execute(self, *args: Any) -> Any:
        self._counter.statements += 1
        return self._cursor.execute(*args)

    def executemany(self, *args: Any) -> Any:
        self._counter.statements += 1
        return self._cursor.executemany(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def make_worker(config: Any, db: Any, variant: str) -> Worker:
    worker = build_worker(config, db)
    if variant == "per_message":
        worker.batched = False
    return worker


def one_run(
    backend: ib.Backend,
    config: Any,
    intake: MessageRules,
    kept: dict[int, Any],
    variant: str,
    args: argparse.Namespace,
    control: int,
) -> dict[str, Any]:
    worker = make_worker(config, backend.db, variant)
    texts = ib.oru_texts(kept, args.messages, 77 + control, True, control)
    ids = ib.journal_batch(backend.db, intake, texts)
    counter = Counter()
    batches = 0
    done = 0
    started = time.perf_counter()
    with counting(backend.db, counter):
        while done < len(ids):
            handled = worker.run_once()
            if handled == 0:
                break
            done += handled
            batches += 1
    seconds = time.perf_counter() - started
    states = ib.journal_states(backend.db, ids)
    if states != {State.DELIVERED: len(ids)}:
        raise RuntimeError(f"{backend.name} {variant}: not all delivered: {states}")
    return {
        "messages": len(ids),
        "seconds": round(seconds, 3),
        "msg_per_s": round(len(ids) / seconds, 1),
        "batches": batches,
        "statements_per_batch": round(counter.statements / max(batches, 1), 1),
        "statements_per_message": round(counter.statements / len(ids), 2),
        "commits": counter.commits,
    }


def profile_run(
    backend: ib.Backend, config: Any, intake: MessageRules, kept: dict[int, Any], control: int
) -> str:
    worker = make_worker(config, backend.db, "batched")
    texts = ib.oru_texts(kept, 2000, 5 + control, True, control)
    ib.journal_batch(backend.db, intake, texts)
    profiler = cProfile.Profile()
    profiler.enable()
    while worker.run_once():
        pass
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    return out.getvalue()


def bench_backend(backend: ib.Backend, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(backend.db)
    keep = set(random.Random(7).sample(range(args.patients), min(args.patients, 2000)))
    kept = ib.load_patients(backend.loader(), args.patients, keep)
    config = load_channels(ROOT / "channels.yaml")
    channel = next(c for c in config.channels if c.enabled)
    intake = rules_for(channel)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    control = 100_000_000
    for r in range(args.runs):
        for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            result = one_run(backend, config, intake, kept, variant, args, control)
            control += args.messages
            runs[variant].append(result)
            log(
                f"{backend.name} {variant} run {r + 1}: {result['msg_per_s']:,.0f} msg/s, "
                f"{result['statements_per_batch']} statements a batch"
            )
    out: dict[str, Any] = {
        v: {"runs": rs, "median_msg_per_s": statistics.median(x["msg_per_s"] for x in rs)}
        for v, rs in runs.items()
    }
    out["ratio_batched_vs_per_message"] = round(
        out["batched"]["median_msg_per_s"] / out["per_message"]["median_msg_per_s"], 2
    )
    if args.profile and backend.name == "sqlite":
        out["profile"] = profile_run(backend, config, intake, kept, control)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--backends", nargs="+", choices=ib.BACKENDS, default=ib.BACKENDS)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    logs.configure("warning")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "benchmark": "pipeline_batch",
        "started_at": stamp,
        "machine": mi.machine(),
        "source": mi.source_state(),
        "setup": vars(args),
    }
    for name in args.backends:
        context = ib.sqlite_backend() if name == "sqlite" else ib.postgres_backend()
        try:
            with context as backend:
                report[name] = bench_backend(backend, args)
        except Unreachable as exc:
            report[name] = {"skipped": str(exc)}
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    text_out = json.dumps(report, indent=2, ensure_ascii=False)
    save_report(text_out, stamp, "pipeline")
    print(text_out)


if __name__ == "__main__":
    main()
