"""Record API benchmark: reading one patient's shared record in a large store.

With ``--patients`` (default 1,000,000) patients bulk-loaded (bench/identify.py's loaders,
through the real schema), one of them gets ``--documents`` (200) CDA documents of every
category and ``--results`` (5,000) lab results linked to them, an open record, a visit at the
professional's facility. The record listener (engine.record_api, uvicorn) then serves, on a
real socket, to a professional of the care team (bearer token):

(a) ``GET /api/v1/records/{ins}`` (the sections: identity, 200 documents through the masking
    rules, extracts, personal space, last access) and ``GET .../results`` (5,000 results as
    series), timed end to end with httpx on a keep-alive connection: p50 / p99 over
    ``--requests`` after a warm-up. Target p99 <= 50 ms for the record.
(b) the same record view in process (no HTTP), and the access layer: ``open_for`` (INS
    lookup, the record's facts, the rules) and the access-log line (insert + commit), each
    timed alone. Target <= 2 ms per read.

Progress on stderr; JSON on stdout, also saved to bench/results/<timestamp>-record_api.json.
``python bench/record_api.py [--patients 1000000] [--runs 3] [--backends sqlite postgresql]``
(try ``--patients 20000 --runs 1`` first). The store of each backend is loaded once and the
``--runs`` measurements are made on it: the figures are their medians (``each_run`` keeps
them all, with the load average after each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import identify as ident  # noqa: E402
from common import POSTGRES_URL, Unreachable, cpu_seconds, save_report  # noqa: E402

from engine.channels.record_api_settings import RecordApiSettings  # noqa: E402
from engine.db import make_engine  # noqa: E402
from engine.migrate import upgrade  # noqa: E402
from engine.record.model import Actor, Role  # noqa: E402
from engine.record_api.routes import as_json  # noqa: E402
from engine.record_api.server import RecordListener  # noqa: E402
from engine.store.access_log import append  # noqa: E402
from engine.store.documents import documents  # noqa: E402
from engine.store.record_access import open_for, record_view  # noqa: E402
from engine.store.record_core import encounters, observations  # noqa: E402
from engine.store.record_people import Professional, add_professional  # noqa: E402
from engine.store.record_tables import statuses  # noqa: E402

TYPES = ("11502-2", "18748-4", "SYNTH", "57833-6", "11490-0", "11369-6", "REMB", "29274-8")
FACILITY = "CHU-BENCH"
RPPS = "10000000001"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TARGET_P99_MS, TARGET_ACCESS_MS = 50.0, 2.0
log = ident.log


def seed_record(db: Any, patient_id: int, n_docs: int, n_results: int) -> str:
    """The patient's documents, results, open record and visit; the professional's token."""
    body = b"<ClinicalDocument xmlns='urn:hl7-org:v3'>" + b"x" * 4000 + b"</ClinicalDocument>"
    with db.begin() as conn:
        rows = []
        for n in range(n_docs):
            at = NOW - timedelta(days=n)
            rows.append(
                {
                    "patient_id": patient_id,
                    "document_id": f"1.2.250.9.{patient_id}.{n}",
                    "version": 1,
                    "type_code": TYPES[n % len(TYPES)],
                    "title": f"Document {n}",
                    "effective_time": at.strftime("%Y%m%d%H%M%S"),
                    "authored_at": at,
                    "author_id": f"1.2.250.1.71.4.2.1^8{10000000000 + n % 7}",
                    "facility": FACILITY if n % 3 else "Laboratoire",
                    "level": "N3",
                    "masked_ps": n % 17 == 0,
                    "invisible_patient": False,
                    "invisible_legal_reps": False,
                    "status": "current",
                    "sha256": "0" * 64,
                    "content": body,
                    "stored_at": at,
                    "updated_at": at,
                    "filed_by": "bench",
                }
            )
        conn.execute(documents.insert(), rows)
        doc_rows = [
            r[0]
            for r in conn.execute(
                documents.select()
                .with_only_columns(documents.c.id)
                .where(documents.c.patient_id == patient_id)
            )
        ]
        obs = []
        for n in range(n_results):
            at = NOW - timedelta(hours=n)
            obs.append(
                {
                    "patient_id": patient_id,
                    "message_id": 1,
                    "document_row": doc_rows[n % len(doc_rows)],
                    "code": f"{1000 + n % 25}-1",
                    "code_text": f"Analyte {n % 25}",
                    "value": f"{4 + (n % 7) / 10:.1f}",
                    "unit": "mmol/L",
                    "reference_range": "3.5-5.0",
                    "observed_at": at,
                    "observed_ts": at.strftime("%Y%m%d%H%M"),
                    "created_at": at,
                }
            )
        conn.execute(observations.insert(), obs)
        conn.execute(
            statuses.insert().values(
                patient_id=patient_id, state="open", emergency_opposed=False, updated_at=NOW
            )
        )
        conn.execute(
            encounters.insert().values(
                patient_id=patient_id,
                visit_number="V1",
                visit_authority=FACILITY,
                status="open",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        return add_professional(conn, Professional(RPPS, "Dr Bench", "médecin", FACILITY))


def percentiles(ns: list[int]) -> dict[str, float]:
    ms = sorted(v / 1e6 for v in ns)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def http_timings(base: str, token: str, path: str, n: int, server: int) -> dict[str, float]:
    """Wall time per request at the client, and the listener's CPU per request (on a shared
    machine the wall time also counts the waits for a core; the CPU time does not)."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(5):
            client.get(path).raise_for_status()
        timings = []
        cpu = cpu_seconds(server)
        for _ in range(n):
            start = time.perf_counter_ns()
            answer = client.get(path)
            timings.append(time.perf_counter_ns() - start)
            answer.raise_for_status()
        cpu = cpu_seconds(server) - cpu
    return {
        **percentiles(timings),
        "server_cpu_ms_per_request": round(cpu * 1000 / n, 3),
        "bytes": len(answer.content),
    }


def access_timings(db: Any, ins: str, n: int) -> dict[str, Any]:
    """``open_for`` then the log line and its commit, each timed alone (wall), and the CPU
    time of both (this thread's: what a quiet machine would take, less the commit's fsync)."""
    actor = Actor(Role.PROFESSIONAL, RPPS, facility=FACILITY)
    check, logged, cpu = [], [], []
    with db.connect() as conn:
        for i in range(n + 5):
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            opened = open_for(conn, actor, ins, NOW)
            t1 = time.perf_counter_ns()
            append(conn, opened.facts.patient_id, actor, "bench", NOW)
            conn.commit()
            t2 = time.perf_counter_ns()
            c1 = time.thread_time_ns()
            if i >= 5:
                check.append(t1 - t0)
                logged.append(t2 - t1)
                cpu.append(c1 - c0)
    both = [a + b for a, b in zip(check, logged, strict=True)]
    return {
        "check": percentiles(check),
        "log_commit": percentiles(logged),
        "check_and_log": percentiles(both),
        "check_and_log_cpu": percentiles(cpu),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def view_timings(db: Any, ins: str, n: int) -> dict[str, Any]:
    """The record view in process (access layer, queries, rules, JSON, commit): what the
    listener adds is the difference with (a)."""
    actor = Actor(Role.PROFESSIONAL, RPPS, facility=FACILITY)
    timings, cpu = [], []
    with db.connect() as conn:
        for i in range(n + 5):
            c0 = time.thread_time_ns()
            start = time.perf_counter_ns()
            as_json(record_view(conn, actor, ins, NOW))
            conn.commit()
            if i >= 5:
                timings.append(time.perf_counter_ns() - start)
                cpu.append(time.thread_time_ns() - c0)
    return {**percentiles(timings), "cpu": percentiles(cpu)}


def serve(url: str, port: int) -> subprocess.Popen[bytes]:
    """The record listener in a process of its own, as in production: a client in the same
    process would share its GIL and inflate every latency."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", url, "--port", str(port)],
        cwd=BENCH.parent,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120  # a loaded machine imports slowly
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return child
        except OSError:
            time.sleep(0.1)
    child.kill()
    raise RuntimeError("the record listener did not start")


def run_listener(url: str, port: int) -> None:
    from engine.db import make_engine

    async def forever() -> None:
        listener = RecordListener(RecordApiSettings(port=port), make_engine(url))
        await listener.start()
        await asyncio.Event().wait()

    asyncio.run(forever())


def measure(backend: Any, ins: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run: a fresh listener process, (a) over HTTP, then (b) in process."""
    port = free_port()
    child = serve(backend.db.url.render_as_string(hide_password=False), port)
    try:
        base = f"http://127.0.0.1:{port}"
        path = f"/api/v1/records/{ins}"
        record = http_timings(base, token, path, args.requests, child.pid)
        results = http_timings(
            base, token, path + "/results", max(args.requests // 4, 20), child.pid
        )
    finally:
        child.terminate()
        child.wait(10)
    return {
        "get_record": record,
        "record_in_process": view_timings(backend.db, ins, args.requests),
        "get_results": results,
        "access_layer": access_timings(backend.db, ins, args.requests),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def medians(runs: list[dict[str, Any]]) -> Any:
    """The median of each figure over the runs (same shape as one run)."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: medians([r[k] for r in runs]) for k in first}
    if isinstance(first, list):
        return [medians([r[i] for r in runs]) for i in range(len(first))]
    return statistics.median(runs) if isinstance(first, int | float) else first


@contextlib.contextmanager
def kept_backend(name: str, where: Path, fresh: bool) -> Iterator[ident.Backend]:
    """A store that outlives the run (``--keep``): the SQLite file ``where/record_api.db``, or
    the PostgreSQL schema ``bench_record_api`` (its seeded patient in ``where``); ``fresh``
    empties it first."""
    if name == "sqlite":
        path = where / "record_api.db"
        for old in where.glob("record_api.db*"):
            if fresh:
                old.unlink()
        db = make_engine(f"sqlite:///{path}", durability="full")
        backend = ident.Backend(
            name, db, lambda: ident.SqliteLoader(path), lambda: ident._file_mb(path)
        )
    else:
        base = make_engine(POSTGRES_URL)
        with base.begin() as conn:
            if fresh:
                conn.exec_driver_sql('DROP SCHEMA IF EXISTS "bench_record_api" CASCADE')
            conn.exec_driver_sql('CREATE SCHEMA IF NOT EXISTS "bench_record_api"')
        base.dispose()
        db = make_engine(f"{POSTGRES_URL}?options=-csearch_path%3Dbench_record_api")
        backend = ident.Backend(
            name, db, lambda: ident.PostgresLoader(db), lambda: ident._pg_mb(db)
        )
    try:
        yield backend
    finally:
        db.dispose()


def seeded_file(name: str, args: argparse.Namespace) -> Path:
    return Path(args.keep or ".") / f"record_api-{name}-{args.patients}.json"


def loaded(name: str, backend: ident.Backend, args: argparse.Namespace) -> tuple[str, str]:
    """The seeded patient's INS and a token of the professional: loaded now, or (``--keep``)
    found from an earlier run on the same store."""
    seeded = seeded_file(name, args)
    if args.keep and seeded.exists():
        ins = json.loads(seeded.read_text())["ins"]
        log(f"{name}: reusing the store of an earlier run ({seeded})")
        with backend.db.begin() as conn:
            return ins, add_professional(conn, Professional(RPPS, "Dr Bench", "médecin", FACILITY))
    upgrade(backend.db)
    started = time.monotonic()
    target_index = args.patients // 2
    kept = ident.load_patients(backend.loader(), args.patients, {target_index})
    log(f"{name}: {args.patients:,} patients in {time.monotonic() - started:.0f} s")
    patient_id, patient = next(iter(kept.items()))
    token = seed_record(backend.db, patient_id, args.documents, args.results)
    if args.keep:
        seeded.write_text(json.dumps({"ins": patient.ins}))
    return patient.ins, token


def bench_backend(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """The store is loaded once; ``--runs`` measurements (each with its own listener) follow
    on it, and the medians of their figures are reported."""
    if args.keep:
        fresh = not seeded_file(name, args).exists()
        context = kept_backend(name, Path(args.keep), fresh)
    else:
        context = ident.sqlite_backend() if name == "sqlite" else ident.postgres_backend()
    with context as backend:
        ins, token = loaded(name, backend, args)
        upgrade(backend.db)  # a kept store made by an older tree
        runs = []
        for n in range(args.runs):
            runs.append(measure(backend, ins, token, args))
            log(f"{name}: run {n + 1}: {json.dumps(runs[-1])}")
        figures = medians(runs)
        return {
            "patients": args.patients,
            "documents": args.documents,
            "results": args.results,
            "runs": args.runs,
            **figures,
            "record_p99_ok": figures["get_record"]["p99_ms"] <= TARGET_P99_MS,
            "access_p99_ok": figures["access_layer"]["check_and_log"]["p99_ms"] <= TARGET_ACCESS_MS,
            "store_mb": round(backend.size_mb(), 1),
            "each_run": runs,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--results", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3, help="measurements on the loaded store")
    parser.add_argument(
        "--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep the stores (SQLite file in DIR, PostgreSQL schema bench_record_api) and "
        "reuse them on the next run with the same --patients",
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_listener(args.serve, args.port)
        return
    from engine import logs

    logs.configure("warning", False)
    report: dict[str, Any] = {
        "targets": {"record_p99_ms": TARGET_P99_MS, "access_ms": TARGET_ACCESS_MS}
    }
    for name in args.backends:
        try:
            report[name] = bench_backend(name, args)
        except Unreachable as exc:
            report[name] = {"skipped": str(exc)}
        log(f"{name}: {json.dumps(report[name])}")
    text = json.dumps(report, indent=2)
    print(text)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    save_report(text, stamp, "record_api")


if __name__ == "__main__":
    main()
