"""Retention purge benchmark: does the daily purge stall intake?

A fresh SQLite database (``engine.db.make_engine``, ``durability: full`` as the repository's
channels.yaml, ``engine.migrate.upgrade``) is seeded with ``--records`` records closed eleven
years ago, each with one visit, ``--results`` lab results and four access-log lines, and one
open record. Then, per mode, on a copy of that database, a writer thread stands in for intake:
every 2 ms it commits one short write (an access-log line of the open record: the same SQLite
write lock the journal takes), and the time each write waits is recorded, while the purge runs:

1. ``reference``: everything due in one transaction (``engine.store.retention.purge`` with no
   limit: what the daily job did before, ``daily_purge``);
2. ``batch_N``: :func:`engine.store.retention_job.purge_in_batches`, N records per transaction
   (``engine.retention.batch``; 500 by default) with the job's rest between batches
   (``PAUSE_SECONDS``);
3. ``batch_N_no_pause``: the same without the rest (what showed that it is needed).

Per mode: purge seconds, and the writer's p50/p99/max wait during the purge. Ratios are of
the medians against the reference in the same run (the same noise). The machine is shared.

``python bench/retention.py [--runs 3] [--records 5000] [--results 6]``: JSON on stdout, also
saved to bench/results/<timestamp>-retention.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from engine import logs  # noqa: E402
from engine.db import make_engine  # noqa: E402
from engine.migrate import upgrade  # noqa: E402
from engine.record.model import Actor, Role  # noqa: E402
from engine.store import access_log  # noqa: E402
from engine.store.record_core import encounters, observations, patients  # noqa: E402
from engine.store.record_tables import statuses  # noqa: E402
from engine.store.retention import purge  # noqa: E402
from engine.store.retention_job import PAUSE_SECONDS, purge_in_batches  # noqa: E402

NOW = datetime.now(UTC)
CLOSED = NOW - timedelta(days=11 * 366)
WRITE_EVERY = 0.002


def seed(path: Path, records: int, results: int) -> int:
    """The database with ``records`` due records and one open one; the open one's id."""
    db = make_engine(f"sqlite:///{path}", durability="full")
    upgrade(db)
    at = {"created_at": CLOSED, "updated_at": CLOSED}
    with db.begin() as conn:
        conn.execute(insert(patients), [{"ins": f"{n:015d}", **at} for n in range(records + 1)])
        ids = list(range(1, records + 1))
        conn.execute(
            insert(statuses),
            [
                {
                    "patient_id": i,
                    "state": "closed",
                    "closed_at": CLOSED,
                    "closed_reason": "patient",
                    "updated_at": CLOSED,
                }
                for i in ids
            ],
        )
        conn.execute(
            insert(encounters),
            [{"patient_id": i, "visit_number": f"V{i}", "status": "closed", **at} for i in ids],
        )
        conn.execute(
            insert(observations),
            [
                {
                    "patient_id": i,
                    "message_id": i,
                    "code": f"C{k}",
                    "value": "4.2",
                    "created_at": CLOSED,
                }
                for i in ids
                for k in range(results)
            ],
        )
        conn.execute(
            insert(access_log.access_log),
            [
                {
                    "patient_id": i,
                    "at": CLOSED,
                    "actor": "patient",
                    "role": "patient",
                    "action": "read_record",
                    "emergency": False,
                }
                for i in ids
                for _ in range(4)
            ],
        )
    db.dispose()
    return records + 1


def measure(path: Path, open_patient: int, batch: int | None, pause: float) -> dict[str, Any]:
    db = make_engine(f"sqlite:///{path}", durability="full")
    waits: list[tuple[float, float]] = []  # (started, waited)
    stop = threading.Event()
    actor = Actor(Role.OPERATOR, "bench")

    def writer() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            with db.begin() as conn:
                access_log.append(conn, open_patient, actor, "read_record", NOW)
            waits.append((started, time.perf_counter() - started))
            time.sleep(WRITE_EVERY)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.2)  # the writer runs before the purge starts
    started = time.perf_counter()
    if batch is None:
        with db.begin() as conn:
            records = len(purge(conn, NOW).patients)
    else:
        records = purge_in_batches(db, NOW, batch, pause=pause).records
    ended = time.perf_counter()
    seconds = ended - started
    time.sleep(0.05)
    stop.set()
    thread.join()
    db.dispose()
    # Every write that overlapped the purge (one blocked through it ends after it).
    during = sorted(w for s, w in waits if s < ended and s + w > started)
    return {
        "records": records,
        "purge_seconds": round(seconds, 3),
        "writes": len(during),
        "write_p50_ms": round(1000 * during[len(during) // 2], 2),
        "write_p99_ms": round(1000 * during[int(len(during) * 0.99)], 2),
        "write_max_ms": round(1000 * during[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--results", type=int, default=6)
    parser.add_argument("--batches", type=int, nargs="*", default=[500, 100])
    args = parser.parse_args()
    logs.configure("warning", False)
    modes: list[tuple[str, int | None, float]] = [("reference", None, 0.0)]
    modes += [(f"batch_{b}", b, PAUSE_SECONDS) for b in args.batches]
    modes += [(f"batch_{b}_no_pause", b, 0.0) for b in args.batches]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in modes}
    with tempfile.TemporaryDirectory() as tmp:
        seeded = Path(tmp) / "seed.db"
        open_patient = seed(seeded, args.records, args.results)
        for run in range(args.runs):
            for name, batch, pause in modes:
                copy = Path(tmp) / f"{name}-{run}.db"
                shutil.copy(seeded, copy)
                result = measure(copy, open_patient, batch, pause)
                assert result["records"] == args.records, result
                runs[name].append(result)
                print(f"run {run + 1} {name}: {result}", file=sys.stderr)
                copy.unlink()
    medians = {
        name: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for name, results in runs.items()
    }
    ref = medians["reference"]
    ratios = {
        name: {
            k: round(m[k] / ref[k], 3) if ref[k] else None
            for k in ("purge_seconds", "write_p99_ms", "write_max_ms")
        }
        for name, m in medians.items()
        if name != "reference"
    }
    report = {
        "benchmark": "retention",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "records": args.records,
        "results_per_record": args.results,
        "pause_seconds": PAUSE_SECONDS,
        "runs": runs,
        "medians": medians,
        "ratios_to_reference": ratios,
    }
    text = json.dumps(report, indent=2)
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (results_dir / f"{stamp}-retention.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
