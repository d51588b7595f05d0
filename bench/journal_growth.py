"""Journal growth benchmark: does the pipeline's rate stay flat as the journal grows?

The engine's real worker (``engine.runtime.wiring.build_worker``, repo channels.yaml, the first
enabled channel: MLLP ``hospital_hl7`` into the record store) processes ``--messages``
(default 200,000) generated ORU^R01 (bench/generate.py: 1.6 KB, 10 OBX, qualified INS) for the
2,000 patients of the generator's pool, registered first by their ADT^A28 through the same
pipeline (untimed). Messages are appended to the journal as intake builds them
(``MessageRules.prepare`` + ``Journal.append``, 500 a transaction, untimed) in blocks of
``--block``, and each block is drained by ``Worker.run_once`` (timed). The rate of each tenth
of the run is its messages over its timed seconds; the run's own first tenth is the reference,
and ``last_vs_first`` = rate of the last tenth / rate of the first (the issue asks >= 0.9). The
journal and the record store both grow (200,000 messages, 2,000,000 observations).

With ``--explain`` the claim's statements are EXPLAIN ANALYZEd (PostgreSQL: BUFFERS) after
the first and the last tenth, with the journal as the run left it.

Same harness as bench/identify.py (in process, no MLLP): SQLite in a temporary file
(``durability: full``), PostgreSQL in a fresh schema of ``AIGUILLAGE_BENCH_POSTGRES_URL``
(default the local ``test`` database), dropped at the end. JSON on stdout, also saved to
bench/results/<timestamp>-journal_growth.json; progress on stderr.

``python bench/journal_growth.py [--messages 200000] [--runs 1] [--backends sqlite postgresql]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate as gen  # noqa: E402
import mllp_ingest as mi  # noqa: E402
from common import Unreachable, postgres_schema, save_report  # noqa: E402

from engine import logs  # noqa: E402
from engine.channels.loader import load_channels  # noqa: E402
from engine.db import make_engine  # noqa: E402
from engine.intake.inbox import rules_for  # noqa: E402
from engine.intake.rules import MessageRules  # noqa: E402
from engine.journal.claim import scan_statement  # noqa: E402
from engine.journal.journal import Journal, utcnow  # noqa: E402
from engine.migrate import upgrade  # noqa: E402
from engine.pipeline.worker import Worker  # noqa: E402
from engine.runtime.wiring import build_worker  # noqa: E402

BACKENDS = ["sqlite", "postgresql"]
TARGET = 0.9
log = mi.log


@contextlib.contextmanager
def sqlite_db() -> Iterator[Engine]:
    tmp = Path(tempfile.mkdtemp(prefix="aiguillage-growth-"))
    db = make_engine(f"sqlite:///{tmp / 'growth.db'}", durability="full")
    try:
        yield db
    finally:
        db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def postgres_db() -> contextlib.AbstractContextManager[Engine]:
    return postgres_schema("bench_growth")


class CpuClock:
    """CPU seconds of this process and of the PostgreSQL backends its connections use (read
    from /proc: the server runs on this machine). Less sensitive than wall time to the other
    work sharing the cores, which a noisy machine has plenty of."""

    def __init__(self, db: Engine) -> None:
        self.backends: set[int] = set()
        self.tick = os.sysconf("SC_CLK_TCK")
        if db.dialect.name == "postgresql":

            def on_connect(dbapi_conn: Any, _record: Any) -> None:
                with dbapi_conn.cursor() as cur:
                    cur.execute("SELECT pg_backend_pid()")
                    self.backends.add(int(cur.fetchone()[0]))

            event.listen(db, "connect", on_connect)
            db.dispose()  # connections made before the listener: made again, and seen

    def server(self) -> float:
        total = 0
        for pid in self.backends:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # a backend that ended: its time is lost (rare: pooled)
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / self.tick

    def now(self) -> tuple[float, float]:
        return time.process_time(), self.server()


def append(db: Engine, intake: MessageRules, bodies: Sequence[bytes]) -> int:
    """Journal the messages as intake would (untimed); how many."""
    rows = []
    for body in bodies:
        prepared = intake.prepare(body, "bench")
        if prepared.error is not None:
            raise RuntimeError(f"intake refused a generated message: {prepared.error}")
        rows.append(prepared.row)
    journal = Journal(db)
    with db.connect() as conn:
        for start in range(0, len(rows), 500):
            journal.append(conn, rows[start : start + 500])
    return len(rows)


def drain(worker: Worker, count: int, clock: CpuClock | None = None) -> tuple[float, float, float]:
    """Run the worker until ``count`` messages are handled: wall seconds, CPU seconds of this
    process and of the database server it took."""
    done = 0
    cpu0, server0 = clock.now() if clock else (0.0, 0.0)
    started = time.perf_counter()
    while done < count:
        handled = worker.run_once()
        if handled == 0:
            raise RuntimeError(f"the worker stopped after {done} of {count} messages")
        done += handled
    wall = time.perf_counter() - started
    cpu1, server1 = clock.now() if clock else (0.0, 0.0)
    return wall, cpu1 - cpu0, server1 - server0


def vacuum(db: Engine) -> float:
    """VACUUM (ANALYZE) of the journal (untimed): what autovacuum does on a server where it is
    on (this machine's PostgreSQL runs with autovacuum = off)."""
    started = time.perf_counter()
    with db.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM (ANALYZE) journal_messages"
        )
    return round(time.perf_counter() - started, 2)


def autovacuum(db: Engine) -> str:
    if db.dialect.name != "postgresql":
        return "n/a"
    with db.connect() as conn:
        return str(conn.exec_driver_sql("SHOW autovacuum").scalar_one())


def states(db: Engine) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM journal_messages GROUP BY state"))
        return {str(s): int(n) for s, n in rows}


def explain_claim(db: Engine) -> dict[str, list[str]]:
    """How the database answers the claim's scan now."""
    scan = scan_statement(db.dialect.name, None)
    params = {"after": 0, "limit": 64, "now": utcnow()}
    with db.connect() as conn:
        query = scan.statement.params(params)
        compiled = query.compile(dialect=db.dialect, compile_kwargs={"literal_binds": True})
        if db.dialect.name == "postgresql":
            sql = f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"
        else:
            sql = f"EXPLAIN QUERY PLAN {compiled}"
        out = {"scan": [" ".join(str(c) for c in r) for r in conn.exec_driver_sql(sql)]}
        conn.rollback()
    return out


def one_run(db: Engine, args: argparse.Namespace, run: int) -> dict[str, Any]:
    config = load_channels(ROOT / "channels.yaml")
    channel = next(c for c in config.channels if c.enabled)
    clock = CpuClock(db)
    worker = build_worker(config, db)
    intake = rules_for(channel)
    t0 = time.perf_counter()
    registrations = gen.registrations(gen.POOL_SIZE)
    # A28 control ids are R<index>: a second run on the same database would be resends.
    drain(worker, append(db, intake, registrations), clock)
    log(f"  {len(registrations):,} patients registered in {time.perf_counter() - t0:.1f} s")
    tenth = args.messages // 10
    rng = random.Random(run)
    pool = gen.make_patients(gen.POOL_SIZE, 2575)
    base = datetime(2025, 3, 1, 7, 0, 0)
    tenths: list[dict[str, Any]] = []
    explains: dict[str, Any] = {}
    control = run * 10_000_000
    for t in range(10):
        seconds = cpu = server = 0.0
        append_s = 0.0
        done = 0
        while done < tenth:
            n = min(args.block, tenth - done)
            bodies = [
                gen.oru_r01(i, pool[rng.randrange(len(pool))], rng, base, control + i).encode()
                for i in range(n)
            ]
            control += n
            a0 = time.perf_counter()
            append(db, intake, bodies)
            append_s += time.perf_counter() - a0
            wall, c, sv = drain(worker, n, clock)
            seconds, cpu, server = seconds + wall, cpu + c, server + sv
            done += n
        rate = done / seconds
        tenths.append(
            {
                "messages": done,
                "pipeline_seconds": round(seconds, 2),
                "msg_per_s": round(rate, 1),
                "cpu_ms_per_msg": round(1000 * (cpu + server) / done, 3),
                "client_cpu_ms_per_msg": round(1000 * cpu / done, 3),
                "server_cpu_ms_per_msg": round(1000 * server / done, 3),
                "append_seconds": round(append_s, 2),
            }
        )
        log(
            f"  tenth {t + 1}: {rate:,.0f} msg/s, CPU {1000 * cpu / done:.2f} ms client + "
            f"{1000 * server / done:.2f} ms server a message (append {done / append_s:,.0f} msg/s)"
        )
        if args.vacuum and db.dialect.name == "postgresql":
            vacuum_s = vacuum(db)
            tenths[-1]["vacuum_seconds"] = vacuum_s
        if args.explain and t in (0, 9):
            explains[f"after_tenth_{t + 1}"] = explain_claim(db)
    worker.close()
    counted = states(db)
    expected = args.messages + gen.POOL_SIZE
    if counted.get("delivered") != expected:
        raise RuntimeError(f"not every message was delivered: {counted}")
    first, last = tenths[0]["msg_per_s"], tenths[-1]["msg_per_s"]
    cpu_first, cpu_last = tenths[0]["cpu_ms_per_msg"], tenths[-1]["cpu_ms_per_msg"]
    out: dict[str, Any] = {
        "tenths": tenths,
        "first_tenth_msg_per_s": first,
        "last_tenth_msg_per_s": last,
        "last_vs_first": round(last / first, 3),
        # CPU per message, first tenth over last: the rate the CPU alone allows, last vs first
        "cpu_last_vs_first": round(cpu_first / cpu_last, 3) if cpu_last else None,
        "journal_states": counted,
        "server_autovacuum": autovacuum(db),
    }
    if explains:
        out["claim_plans"] = explains
    return out


def run_backend(name: str, args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for r in range(args.runs):
        log(f"{name}: run {r + 1} of {args.runs}, {args.messages:,} messages")
        context = sqlite_db() if name == "sqlite" else postgres_db()
        try:
            with context as db:
                upgrade(db)
                if args.without_pending_index:  # the journal as it was before migration 0017
                    with db.begin() as conn:
                        conn.execute(text("DROP INDEX ix_journal_messages_pending"))
                runs.append(one_run(db, args, r))
        except Unreachable as exc:
            log(f"{name}: skipped ({exc})")
            return {"skipped": str(exc)}
        log(f"{name}: run {r + 1}: last/first {runs[-1]['last_vs_first']}")
    ratios = [x["last_vs_first"] for x in runs]
    return {
        "runs": runs,
        "median_first_tenth_msg_per_s": statistics.median(x["first_tenth_msg_per_s"] for x in runs),
        "median_last_tenth_msg_per_s": statistics.median(x["last_tenth_msg_per_s"] for x in runs),
        "median_last_vs_first": statistics.median(ratios),
        "median_cpu_last_vs_first": statistics.median(
            x["cpu_last_vs_first"] for x in runs if x["cpu_last_vs_first"] is not None
        ),
        "target": {"last_vs_first": f">= {TARGET}", "met": statistics.median(ratios) >= TARGET},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--block", type=int, default=2_000, help="messages appended at a time")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS)
    parser.add_argument("--explain", action="store_true", help="claim plans, first/last tenth")
    parser.add_argument(
        "--vacuum",
        action="store_true",
        help="PostgreSQL: VACUUM (ANALYZE) journal_messages after each tenth, untimed",
    )
    parser.add_argument(
        "--without-pending-index",
        action="store_true",
        help="drop ix_journal_messages_pending (migration 0017) first: the rate before it",
    )
    args = parser.parse_args()
    logs.configure("warning")
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "benchmark": "journal_growth",
        "started_at": stamp,
        "machine": mi.machine(),
        "source": mi.source_state(),
        "setup": {
            "messages": args.messages,
            "block": args.block,
            "runs": args.runs,
            "worker": "runtime.wiring.build_worker(repo channels.yaml), batch 64, in process",
            "message": "bench/generate.py ORU^R01 v2.5, 10 OBX, IPP + INS + VALI, 2,000 patients",
            "timed": "Worker.run_once until the block is handled (intake append untimed)",
            "reference": "the run's own first tenth",
            "without_pending_index": args.without_pending_index,
            "vacuum_each_tenth": args.vacuum,
        },
    }
    for name in args.backends:
        report[name] = run_backend(name, args)
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    report["duration_seconds"] = round(time.monotonic() - started, 1)
    out = json.dumps(report, indent=2, ensure_ascii=False)
    save_report(out, stamp, "journal_growth")
    print(out)


if __name__ == "__main__":
    main()
