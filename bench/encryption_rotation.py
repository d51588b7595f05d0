"""Key rotation beside a running engine: how long the engine's writes wait while
``aiguillage keys rotate`` re-encrypts the store (``engine.store.encryption.reencrypt``).

A fresh SQLite database (channels.yaml's durability) holds ``--documents`` rows of the 135 KB
CDA sample sealed under a first key (inserted directly: what is measured is the rotation, not
the filing). A writer thread stands in for intake: one short write transaction every 2 ms
(``BEGIN IMMEDIATE``, the SQLite write lock the journal takes), each timed. Per run, each on
its own fresh database, in this order:

1. ``reference``: the writer alone for 3 s (no rotation);
2. ``pause``: the rotation as ``keys rotate`` runs it (``--batch`` rows, 0.12 s rest after each);
3. ``no_pause``: the same batches back to back.

Per mode: the rotation's seconds, the writes during it and their p50/p99/max wait. Medians of
``--runs`` runs. ``python bench/encryption_rotation.py [--runs 3] [--documents 1000]``;
JSON on stdout, saved to bench/results/<timestamp>-encryption-rotation.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import documents as bd  # noqa: E402

from engine import logs  # noqa: E402
from engine.security.keys import Keyring, new_key  # noqa: E402
from engine.store import crypto  # noqa: E402
from engine.store.documents import documents  # noqa: E402
from engine.store.encryption import PAUSE_SECONDS, reencrypt  # noqa: E402

MODES = {"reference": None, "pause": PAUSE_SECONDS, "no_pause": 0.0}
WRITE_EVERY_S = 0.002
BATCH = 20  # keys rotate's default


def sealed_store(db: Any, patient_id: int, count: int, ring: Keyring, sample: bytes) -> None:
    now = datetime.now(UTC)
    rows = []
    for n in range(count):
        document_id = f"1.2.250.1.213.1.1.1.55.2024.9.1.{n}"
        key, blob = crypto.seal_with(ring, sample, crypto.document_aad(document_id, 1))
        rows.append(
            {
                "patient_id": patient_id,
                "document_id": document_id,
                "version": 1,
                "status": "current",
                "sha256": hashlib.sha256(sample).hexdigest(),
                "content": blob,
                "key_id": key,
                "stored_at": now,
                "updated_at": now,
            }
        )
    with db.begin() as conn:
        conn.execute(documents.insert(), rows)
        conn.exec_driver_sql("CREATE TABLE bench_writes (id INTEGER PRIMARY KEY, at TEXT)")


def writer(db: Any, stop: threading.Event, waits: list[float]) -> None:
    with db.connect() as conn:
        while not stop.is_set():
            t0 = time.perf_counter()
            with conn.begin():
                conn.exec_driver_sql("INSERT INTO bench_writes (at) VALUES ('x')")
            waits.append(time.perf_counter() - t0)
            time.sleep(WRITE_EVERY_S)


def one_mode(count: int, sample: bytes, pause: float | None, batch: int) -> dict[str, float]:
    with bd.store_database() as (db, patient_id, _):
        old = Keyring([new_key()])
        sealed_store(db, patient_id, count, old, sample)
        ring = Keyring([*old.all_keys(), new_key()])
        waits: list[float] = []
        stop = threading.Event()
        thread = threading.Thread(target=writer, args=(db, stop, waits))
        thread.start()
        started = time.perf_counter()
        try:
            if pause is None:
                time.sleep(3.0)
                rotated = 0
            else:
                with db.connect() as conn:
                    rotated = sum(p.rows for p in reencrypt(conn, ring, batch, pause))
        finally:
            seconds = time.perf_counter() - started
            stop.set()
            thread.join()
        if pause is not None and rotated != count:
            raise RuntimeError(f"{rotated} rows re-encrypted, not {count}")
    ms = sorted(w * 1000 for w in waits)
    return {
        "seconds": seconds,
        "writes": len(ms),
        "write_p50_ms": statistics.median(ms),
        "write_p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "write_max_ms": ms[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=BATCH, help="rows per transaction")
    args = parser.parse_args()
    logs.configure("warning")
    sample = bd.SAMPLE.read_bytes()
    runs = []
    for index in range(args.runs):
        out = {}
        for mode, pause in MODES.items():
            result = one_mode(args.documents, sample, pause, args.batch)
            out[mode] = result
            bd.log(
                f"run {index + 1}: {mode}: {result['seconds']:.1f} s, {result['writes']} writes, "
                f"p99 {result['write_p99_ms']:.1f} ms, max {result['write_max_ms']:.1f} ms"
            )
        runs.append(out)
    medians = {
        mode: {k: round(statistics.median(r[mode][k] for r in runs), 2) for k in runs[0][mode]}
        for mode in MODES
    }
    report = {
        "benchmark": "encryption_rotation",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "documents": args.documents,
        "batch": args.batch,
        "document_bytes": len(sample),
        "durability": bd.configured_durability(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "medians": medians,
        "runs": runs,
    }
    text = json.dumps(report, indent=2)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (results / f"{stamp}-encryption-rotation.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
