"""Duplicates benchmark: ``aiguillage identity duplicates`` over a large record store.

``--patients`` (default 1,000,000) qualified patients are bulk-loaded with bench/identify.py's
loaders (the same generator, executemany on SQLite, COPY on PostgreSQL, through the real
schema), then ``--duplicates`` of them are registered a second time as provisional identities
(no INS, another IPP): the pairs the listing must find. The generated pool also holds natural
namesakes (same names, birth date and sex) with two qualified INS, which must not be proposed.
The folded-traits keys of the bulk-loaded rows are written by
``engine.store.trait_keys.backfill`` (what migration 0008 runs; timed apart). Then
``engine.store.identity_duplicates.probable_duplicates`` (what the CLI prints) is timed ``--runs``
times on a fresh connection each; the median is compared with the 60 s target.

``python bench/duplicates.py [--patients 1000000] [--runs 3] [--backends sqlite postgresql]``
Progress on stderr; JSON on stdout, also saved to bench/results/<timestamp>-duplicates.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import generate as gen  # noqa: E402
import identify as ident  # noqa: E402
import mllp_ingest as mi  # noqa: E402
from common import Unreachable, save_report  # noqa: E402

from engine.migrate import upgrade  # noqa: E402
from engine.store.identity_duplicates import probable_duplicates  # noqa: E402
from engine.store.record_core import patient_identifiers, patients  # noqa: E402
from engine.store.trait_keys import backfill  # noqa: E402

TARGET_SECONDS = 60.0
log = mi.log


def add_provisional_copies(backend: ident.Backend, kept: dict[int, gen.Patient]) -> int:
    """Each kept patient registered again without INS under another IPP (ids after the pool)."""
    base = max(kept) + 10_000_000
    rows, ids = [], []
    for n, (patient_id, p) in enumerate(sorted(kept.items())):
        row = dict(
            zip(
                ident.PATIENT_COLUMNS,
                ident.patient_row(0, p, ident.REGISTERED_AT, ident.birth(p)),
                strict=True,
            )
        )
        row.update(id=base + n, ins="", ins_oid="", identity_status="PROV")
        rows.append(row)
        ids.append(
            {
                "patient_id": base + n,
                "value": f"DUP{patient_id}",
                "authority": "CHU-Y",
                "type_code": "PI",
            }
        )
    with backend.db.begin() as conn:
        conn.execute(insert(patients), rows)
        conn.execute(insert(patient_identifiers), ids)
    return len(rows)


def write_keys(backend: ident.Backend) -> dict[str, Any]:
    started = time.monotonic()
    with backend.db.begin() as conn:
        written = backfill(conn)
    seconds = time.monotonic() - started
    if backend.name == "postgresql":
        with backend.db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE store_patient_trait_keys"))
    else:
        with backend.db.begin() as conn:
            conn.execute(text("ANALYZE"))
    return {"keys": written, "seconds": round(seconds, 1)}


def time_listing(
    backend: ident.Backend, runs: int, expected: set[tuple[int, int]]
) -> dict[str, Any]:
    times, counts = [], []
    for r in range(runs):
        with backend.db.connect() as conn:
            t0 = time.perf_counter()
            pairs = probable_duplicates(conn)
            times.append(time.perf_counter() - t0)
        found = {(p.patient_a, p.patient_b) for p in pairs}
        if not expected <= found:
            raise RuntimeError(f"{len(expected - found)} planted duplicates not listed")
        counts.append(len(pairs))
        log(f"{backend.name}: listing run {r + 1}: {times[-1]:.2f} s, {len(pairs):,} pairs")
    median = statistics.median(times)
    return {
        "runs_seconds": [round(t, 3) for t in times],
        "median_seconds": round(median, 3),
        "pairs": counts[0],
        "target": f"<= {TARGET_SECONDS:g} s",
        "met": median <= TARGET_SECONDS,
    }


def bench_backend(backend: ident.Backend, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(backend.db)
    keep = set(random.Random(11).sample(range(args.patients), min(args.patients, args.duplicates)))
    log(f"{backend.name}: loading {args.patients:,} patients")
    t0 = time.monotonic()
    kept = ident.load_patients(backend.loader(), args.patients, keep)
    load_s = time.monotonic() - t0
    copies = add_provisional_copies(backend, kept)
    base = max(kept) + 10_000_000
    expected = {(pid, base + n) for n, pid in enumerate(sorted(kept))}
    keys = write_keys(backend)
    log(f"{backend.name}: loaded in {load_s:.0f} s, {copies} copies, keys in {keys['seconds']} s")
    return {
        "load_seconds": round(load_s, 1),
        "provisional_copies": copies,
        "trait_keys_backfill": keys,
        "database_mb": round(backend.size_mb(), 1),
        "listing": time_listing(backend, args.runs, expected),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--duplicates", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="+", choices=ident.BACKENDS, default=ident.BACKENDS)
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "benchmark": "duplicates",
        "started_at": stamp,
        "machine": mi.machine(),
        "source": mi.source_state(),
        "setup": vars(args),
    }
    for name in args.backends:
        context = ident.sqlite_backend() if name == "sqlite" else ident.postgres_backend()
        try:
            with context as backend:
                report[name] = bench_backend(backend, args)
        except Unreachable as exc:
            report[name] = {"skipped": str(exc)}
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    out = json.dumps(report, indent=2)
    save_report(out, stamp, "duplicates")
    print(out)


if __name__ == "__main__":
    main()
