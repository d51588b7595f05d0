"""Identify benchmark: the cost of the patient-identity rules with a large record store.

With ``--patients`` (default 1,000,000) qualified patients in the store, on SQLite and on
PostgreSQL, it measures:

(a) the identify step alone: ``Filing.patient_for(conn, message_id, record, now, adt=False)``
    (what the record store destination calls for every message) on the PatientRecord of an
    ORU^R01 for a random known patient, timed with ``time.perf_counter_ns`` around the call
    only, in one transaction rolled back at the end, after an untimed warm-up. Variants:
    ``ins_vali`` (IPP + INS, PID-32 VALI: INS lookup, local lookup, trait comparison) and
    ``local_only`` (IPP alone: local lookup and trait comparison). p50 / p99 / mean per run.
(b) the full pipeline: the engine's real worker (``engine.runtime.wiring.build_worker`` on the repo
    channels.yaml) on the same database; N ORU^R01 are appended to the journal as intake
    builds them (``MessageRules.prepare`` + ``Journal.append``, untimed), then ``Worker.run_once``
    is timed until all are processed, and every one must end ``delivered``. ``on`` is the
    engine as it is; ``off`` has ``Filing.patient_for`` replaced by the minimum any engine does
    to file a result: one indexed SELECT of the patient id by the IPP on
    store_patient_identifiers. Rounds of one ``on`` and one ``off`` run, in alternating order
    (the database slows down as the journal and the store grow): cost = 1 - on/off on the
    medians of msg/s, and the median of the rounds' own 1 - on/off as a check.

``query_plans`` shows how each database answers the SELECTs one identify call runs (captured
while it runs, so whatever the engine's statements are), with PostgreSQL's generic plan for the
prepared statement. The INS lookup must repeat the partial unique index's predicate (``ins !=
''``, a literal): without it SQLite scans the table (136 ms a call at 1M patients, measured at
89997f1) and PostgreSQL's generic plan is a sequential scan.

A run stops at its time budget (``--identify-budget``, ``--pipeline-budget``): a variant that
slow reports the calls or messages it got through (``complete: false``); the pipeline messages
it left are set ``discarded`` so that they do not slow the next run.

Patients come from bench/generate.py (same PIDs as the generated messages), bulk-loaded through
the real schema (``engine.migrate.upgrade``): executemany in one transaction on SQLite, COPY on
PostgreSQL (in a fresh schema, dropped at the end; skipped with a note when unreachable).
Medians of ``--runs`` runs. Progress on stderr; JSON on stdout, also saved to
bench/results/<timestamp>-identify.json.

``python bench/identify.py [--patients 1000000] [--runs 3] [--backends sqlite postgresql]``
(try ``--patients 20000`` first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy import Connection, bindparam, event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate as gen  # noqa: E402
import mllp_ingest as mi  # noqa: E402
from common import Unreachable, postgres_schema, save_report  # noqa: E402

from engine import logs  # noqa: E402
from engine.channels.loader import load_channels  # noqa: E402
from engine.db import make_engine  # noqa: E402
from engine.errors import PatientNotKnown  # noqa: E402
from engine.fastsql import FastStatement  # noqa: E402
from engine.hl7v2.reader import Message  # noqa: E402
from engine.identity.rules import IdentityPolicy  # noqa: E402
from engine.intake.inbox import rules_for  # noqa: E402
from engine.intake.rules import MessageRules  # noqa: E402
from engine.journal.journal import Journal  # noqa: E402
from engine.journal.message_tables import State, messages  # noqa: E402
from engine.migrate import upgrade  # noqa: E402
from engine.pipeline.identify.patient_filing import Filing  # noqa: E402
from engine.pipeline.worker import Worker  # noqa: E402
from engine.runtime.wiring import build_worker  # noqa: E402
from engine.store.record_core import patient_identifiers  # noqa: E402
from engine.transforms.map_adt import PatientRecord  # noqa: E402
from engine.transforms.map_hl7 import map_message  # noqa: E402

POOL_SEED = 2575  # bench/generate.py's patient pool
CHUNK = 10_000
REGISTERED_AT = datetime(2025, 2, 1, 7, 0, tzinfo=UTC)
MESSAGES_BASE = datetime(2025, 3, 1, 7, 0)
TARGET_P99_MS = 1.0
TARGET_COST = 0.15
BACKENDS = ["sqlite", "postgresql"]

log = mi.log

# -- loading the store --------------------------------------------------------------------------

PATIENT_COLUMNS = (
    "id",
    "ins",
    "ins_oid",
    "identity_status",
    "birth_name",
    "first_given_name",
    "given_names",
    "birth_date",
    "birth_date_parsed",
    "sex",
    "birth_place",
    "address",
    "phone",
    "created_at",
    "updated_at",
)
IDENTIFIER_COLUMNS = ("id", "patient_id", "value", "authority", "authority_oid", "type_code")
Row = tuple[Any, ...]


def patient_row(patient_id: int, p: gen.Patient, created: Any, born: Any) -> Row:
    """A store_patients row as an ADT^A28 of this patient would create it."""
    return (
        patient_id,
        p.ins,
        gen.INS_OID,
        gen.QUALIFIED,
        p.family,
        p.given,
        f"{p.given} {p.second}",
        p.birth_date,
        born,
        p.sex,
        p.insee,
        f"{p.street}, {p.city}, {p.zip_code}, FRA",
        p.phone,
        created,
        created,
    )


def identifier_row(patient_id: int, p: gen.Patient) -> Row:
    return (patient_id, patient_id, p.ipp, gen.IPP_AUTHORITY, gen.IPP_AUTHORITY_OID, "PI")


def birth(p: gen.Patient) -> date:
    d = p.birth_date
    return date(int(d[:4]), int(d[4:6]), int(d[6:8]))


class SqliteLoader:
    """executemany in chunks, one transaction, on a connection of its own (its PRAGMAs do not
    reach the measured connections)."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA cache_size=-400000")  # 400 MB: random-order index inserts
        self.conn.execute("BEGIN IMMEDIATE")
        self.created = REGISTERED_AT.replace(tzinfo=None).isoformat(" ", "microseconds")

    def write(self, chunk: Sequence[tuple[int, gen.Patient]]) -> None:
        created = self.created
        self.conn.executemany(
            _insert_sql("store_patients", PATIENT_COLUMNS),
            [patient_row(i, p, created, birth(p).isoformat()) for i, p in chunk],
        )
        self.conn.executemany(
            _insert_sql("store_patient_identifiers", IDENTIFIER_COLUMNS),
            [identifier_row(i, p) for i, p in chunk],
        )

    def finish(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("ANALYZE")
        self.conn.close()


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


class PostgresLoader:
    """COPY FROM STDIN through psycopg, one transaction; then the id sequences and VACUUM
    ANALYZE (so that autovacuum does not start in the middle of a measurement)."""

    def __init__(self, db: Engine) -> None:
        self.raw = db.raw_connection()
        self.conn: Any = self.raw.driver_connection

    def write(self, chunk: Sequence[tuple[int, gen.Patient]]) -> None:
        with self.conn.cursor() as cur:
            self._copy(cur, "store_patients", PATIENT_COLUMNS, _pg_patient_rows(chunk))
            self._copy(
                cur,
                "store_patient_identifiers",
                IDENTIFIER_COLUMNS,
                (identifier_row(i, p) for i, p in chunk),
            )

    @staticmethod
    def _copy(cur: Any, table: str, columns: Sequence[str], rows: Iterable[Row]) -> None:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def finish(self) -> None:
        with self.conn.cursor() as cur:
            for table in ("store_patients", "store_patient_identifiers"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        self.conn.commit()
        self.conn.autocommit = True
        for table in ("store_patients", "store_patient_identifiers"):
            self.conn.execute(f"VACUUM ANALYZE {table}")
        self.conn.autocommit = False
        self.raw.close()


def _pg_patient_rows(chunk: Sequence[tuple[int, gen.Patient]]) -> Iterator[Row]:
    for i, p in chunk:
        yield patient_row(i, p, REGISTERED_AT, birth(p))


def load_patients(
    loader: SqliteLoader | PostgresLoader, count: int, keep: set[int]
) -> dict[int, gen.Patient]:
    """Store patients 1..count (id = pool index + 1); returns the kept ones by id."""
    kept: dict[int, gen.Patient] = {}
    chunk: list[tuple[int, gen.Patient]] = []
    started = time.monotonic()
    for index, patient in enumerate(gen.iter_patients(count, POOL_SEED)):
        if index in keep:
            kept[index + 1] = patient
        chunk.append((index + 1, patient))
        if len(chunk) == CHUNK:
            loader.write(chunk)
            chunk = []
            if (index + 1) % 100_000 == 0:
                log(f"  {index + 1:,} patients ({time.monotonic() - started:.0f} s)")
    if chunk:
        loader.write(chunk)
    loader.finish()
    return kept


# -- databases ----------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    db: Engine
    loader: Callable[[], SqliteLoader | PostgresLoader]
    size_mb: Callable[[], float]


@contextlib.contextmanager
def sqlite_backend() -> Iterator[Backend]:
    tmp = Path(tempfile.mkdtemp(prefix="aiguillage-identify-"))
    path = tmp / "identify.db"
    db = make_engine(f"sqlite:///{path}", durability="full")
    try:
        yield Backend("sqlite", db, lambda: SqliteLoader(path), lambda: _file_mb(path))
    finally:
        db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def _file_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


@contextlib.contextmanager
def postgres_backend() -> Iterator[Backend]:
    """A fresh schema (the URL's search_path), dropped afterwards."""
    with postgres_schema("bench_identify") as db:
        yield Backend("postgresql", db, lambda: PostgresLoader(db), lambda: _pg_mb(db))


def _pg_mb(db: Engine) -> float:
    with db.connect() as conn:
        size = conn.execute(
            text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
            )
        ).scalar_one()
    return float(size or 0) / 2**20


# -- messages -----------------------------------------------------------------------------------


def oru_texts(
    kept: dict[int, gen.Patient], count: int, seed: int, qualified: bool, control: int
) -> list[tuple[int, str]]:
    """``count`` ORU^R01 for random kept patients: (expected patient id, text)."""
    rng = random.Random(seed)
    ids = list(kept)
    out = []
    for n in range(count):
        patient_id = ids[rng.randrange(len(ids))]
        body = gen.oru_r01(n, kept[patient_id], rng, MESSAGES_BASE, control + n, qualified)
        out.append((patient_id, body))
    return out


def records(texts: Sequence[tuple[int, str]]) -> list[tuple[int, PatientRecord]]:
    return [(pid, map_message(Message(body)).patient) for pid, body in texts]


# -- (a) the identify step ----------------------------------------------------------------------


def time_identify(
    db: Engine, batch: Sequence[tuple[int, PatientRecord]], warmup: int, budget_s: float
) -> dict[str, Any]:
    """Nanoseconds per ``patient_for`` call (after ``warmup`` untimed calls), one transaction
    rolled back; stops early after ``budget_s`` seconds. Every answer must be the right id."""
    filing = Filing(IdentityPolicy(accept_test_ins=True))
    timings = array("q")
    found: list[int] = []
    with db.connect() as conn:
        conn.begin()
        now = datetime.now(UTC)
        started = time.perf_counter()
        for _, record in batch[:warmup]:
            filing.patient_for(conn, 0, record, now, adt=False)
            if time.perf_counter() - started > budget_s / 4:
                break  # a slow lookup needs no long warm-up
        deadline = time.perf_counter_ns() + int(budget_s * 1e9)
        for _, record in batch[warmup:]:
            t0 = time.perf_counter_ns()
            patient_id = filing.patient_for(conn, 0, record, now, adt=False)
            t1 = time.perf_counter_ns()
            timings.append(t1 - t0)
            found.append(patient_id)
            if t1 > deadline:
                break
        conn.rollback()
    expected = [pid for pid, _ in batch[warmup : warmup + len(found)]]
    if found != expected:
        wrong = sum(a != b for a, b in zip(found, expected, strict=True))
        raise RuntimeError(f"identify answered the wrong patient for {wrong} records")
    return summarize_ns(timings, len(batch) - warmup)


def summarize_ns(timings: Sequence[int], planned: int) -> dict[str, Any]:
    ms = sorted(t / 1e6 for t in timings)
    return {
        "calls": len(ms),
        "complete": len(ms) == planned,
        "p50_ms": round(mi.quantile(ms, 0.50), 4),
        "p99_ms": round(mi.quantile(ms, 0.99), 4),
        "max_ms": round(ms[-1], 4),
        "mean_ms": round(statistics.fmean(ms), 4),
    }


def plan_samples(kept: dict[int, gen.Patient]) -> dict[str, PatientRecord]:
    return {
        name: records(oru_texts(kept, 1, 5, qualified, 0))[0][1]
        for name, qualified in (("ins_vali", True), ("local_only", False))
    }


def identify_step(
    backend: Backend, kept: dict[int, gen.Patient], args: argparse.Namespace
) -> dict[str, Any]:
    """(a) for each variant: ``args.runs`` runs on distinct random patients."""
    per_run = args.warmup + args.calls
    out: dict[str, Any] = {}
    for name, qualified in (("ins_vali", True), ("local_only", False)):
        runs = []
        for r in range(args.runs):
            seed = 1000 * r + len(name)
            batch = records(oru_texts(kept, per_run, seed, qualified, 0))
            result = time_identify(backend.db, batch, args.warmup, args.identify_budget)
            runs.append(result)
            log(
                f"{backend.name}: identify {name} run {r + 1}: p50 {result['p50_ms']:.3f} ms, "
                f"p99 {result['p99_ms']:.3f} ms, mean {result['mean_ms']:.3f} ms "
                f"({result['calls']:,} calls)"
            )
        out[name] = {"runs": runs, "median": medians(runs, ("p50_ms", "p99_ms", "mean_ms"))}
    return out


def medians(runs: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in keys}


# -- (b) the pipeline ---------------------------------------------------------------------------

_ID_BY_IPP = FastStatement(
    select(patient_identifiers.c.patient_id).where(
        patient_identifiers.c.value == bindparam("value"),
        patient_identifiers.c.authority == bindparam("authority"),
        patient_identifiers.c.authority_oid == bindparam("authority_oid"),
        patient_identifiers.c.type_code == bindparam("type_code"),
    )
)


def patient_by_ipp(
    self: Filing, conn: Connection, message_id: int, record: PatientRecord, now: datetime, adt: bool
) -> int:
    """``off``: the patient id by the IPP, one indexed SELECT, no identity rules."""
    ipp = record.identity.local_ids[0]
    rows = _ID_BY_IPP.execute(
        conn,
        {
            "value": ipp.value,
            "authority": ipp.authority,
            "authority_oid": ipp.authority_oid,
            "type_code": ipp.type_code,
        },
    )
    if not rows:
        raise PatientNotKnown("no patient with this IPP", keys=())
    return int(rows[0][0])


def identification_off() -> contextlib.AbstractContextManager[Any]:
    return mock.patch.object(Filing, "patient_for", patient_by_ipp)


PIPELINE_VARIANTS: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
    "on": contextlib.nullcontext,
    "off": identification_off,
}


def journal_batch(db: Engine, intake: MessageRules, texts: Sequence[tuple[int, str]]) -> list[int]:
    """Append the messages as intake would (untimed); their journal ids."""
    rows = []
    for _, body in texts:
        prepared = intake.prepare(body.encode("utf-8"), "bench")
        if prepared.error is not None:
            raise RuntimeError(f"intake refused a generated message: {prepared.error}")
        rows.append(prepared.row)
    ids: list[int] = []
    journal = Journal(db)
    with db.connect() as conn:
        for start in range(0, len(rows), 500):
            ids += [a.id for a in journal.append(conn, rows[start : start + 500])]
    return ids


def drain(worker: Worker, count: int, budget_s: float) -> tuple[int, float]:
    """Run the worker until ``count`` messages are processed (or the budget is spent)."""
    done = 0
    started = time.perf_counter()
    while done < count:
        handled = worker.run_once()
        done += handled
        if handled == 0 or time.perf_counter() - started > budget_s:
            break
    return done, time.perf_counter() - started


def journal_states(db: Engine, ids: Sequence[int]) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(
            select(messages.c.state, func.count())
            .where(messages.c.id.between(min(ids), max(ids)))
            .group_by(messages.c.state)
        )
        return {str(state): int(n) for state, n in rows}


def discard_leftovers(db: Engine, ids: Sequence[int]) -> None:
    """After a run cut short by its budget: the rest must not slow the next run."""
    with db.begin() as conn:
        conn.execute(
            messages.update()
            .where(messages.c.id.between(min(ids), max(ids)), messages.c.state == State.RECEIVED)
            .values(state=State.DISCARDED)
        )


def pipeline_run(
    backend: Backend,
    worker: Worker,
    intake: MessageRules,
    texts: Sequence[tuple[int, str]],
    budget: float,
) -> dict[str, Any]:
    ids = journal_batch(backend.db, intake, texts)
    done, seconds = drain(worker, len(ids), budget)
    if done < len(ids):
        discard_leftovers(backend.db, ids)
    states = journal_states(backend.db, ids)
    delivered = states.get(State.DELIVERED, 0)
    if delivered != done or set(states) - {State.DELIVERED, State.DISCARDED}:
        raise RuntimeError(f"{backend.name}: pipeline messages not all delivered: {states}")
    return {
        "messages": len(ids),
        "delivered": delivered,
        "complete": delivered == len(ids),
        "seconds": round(seconds, 3),
        "msg_per_s": round(delivered / seconds, 1),
    }


def pipeline_step(
    backend: Backend, kept: dict[int, gen.Patient], args: argparse.Namespace
) -> dict[str, Any]:
    """(b) rounds of on and off, each run on fresh journal messages, the order alternating."""
    config = load_channels(ROOT / "channels.yaml")
    channel = next(c for c in config.channels if c.enabled)
    worker = build_worker(config, backend.db)
    intake = rules_for(channel)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in PIPELINE_VARIANTS}
    control = 100_000_000
    names = list(PIPELINE_VARIANTS)
    for r in range(args.pipeline_runs):
        for name in names if r % 2 == 0 else names[::-1]:
            patch = PIPELINE_VARIANTS[name]
            texts = oru_texts(kept, args.pipeline_messages, 77 + control, True, control)
            control += args.pipeline_messages
            with patch():
                result = pipeline_run(backend, worker, intake, texts, args.pipeline_budget)
            runs[name].append(result)
            log(
                f"{backend.name}: pipeline {name} run {r + 1}: {result['msg_per_s']:,.0f} msg/s "
                f"({result['delivered']:,} delivered in {result['seconds']:.1f} s)"
            )
    out: dict[str, Any] = {
        name: {"runs": rs, "median_msg_per_s": statistics.median(x["msg_per_s"] for x in rs)}
        for name, rs in runs.items()
    }
    out["cost_on_vs_off"] = round(
        1 - out["on"]["median_msg_per_s"] / out["off"]["median_msg_per_s"], 4
    )
    paired = [
        1 - on["msg_per_s"] / off["msg_per_s"]
        for on, off in zip(runs["on"], runs["off"], strict=True)
    ]
    out["cost_per_round"] = [round(c, 4) for c in paired]
    out["cost_median_of_rounds"] = round(statistics.median(paired), 4)
    return out


# -- query plans --------------------------------------------------------------------------------


@dataclass
class Ran:
    """A SELECT the identify step ran, as the DBAPI cursor got it."""

    sql: str
    params: Any


def statements_run(db: Engine, record: PatientRecord) -> list[Ran]:
    """The SELECTs one ``patient_for`` call runs, whichever way the engine issues them
    (``FastStatement`` on the DBAPI cursor, or SQLAlchemy's ``conn.execute``)."""
    ran: list[Ran] = []
    original = FastStatement.execute

    def spy(self: FastStatement, conn: Connection, row: Mapping[str, Any]) -> list[Row]:
        ran.append(dbapi_form(conn, self.statement, row))
        return original(self, conn, row)

    def listener(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        ran.append(Ran(sql, params))

    event.listen(db, "before_cursor_execute", listener)
    try:
        with mock.patch.object(FastStatement, "execute", spy), db.connect() as conn:
            filing = Filing(IdentityPolicy(accept_test_ins=True))
            filing.patient_for(conn, 0, record, datetime.now(UTC), adt=False)
            conn.rollback()
    finally:
        event.remove(db, "before_cursor_execute", listener)
    return [r for r in ran if r.sql.lstrip().upper().startswith(("SELECT", "WITH", "("))]


def dbapi_form(conn: Connection, statement: ClauseElement, row: Mapping[str, Any]) -> Ran:
    compiled = statement.compile(dialect=conn.dialect)
    assert isinstance(compiled, SQLCompiler)
    values = compiled.construct_params(dict(row)) or {}
    order = compiled.positiontup
    return Ran(str(compiled), tuple(values[k] for k in order) if order is not None else values)


def query_plans(backend: Backend, samples: dict[str, PatientRecord]) -> dict[str, Any]:
    """How the database answers the identify step's SELECTs, per variant; on PostgreSQL also
    the generic plan it may cache for the prepared statement (psycopg prepares a statement
    after 5 executions)."""
    out: dict[str, Any] = {}
    for name, record in samples.items():
        ran = statements_run(backend.db, record)
        with backend.db.connect() as conn:
            out[name] = [explain(conn, backend.name, r) for r in ran]
    return out


def explain(conn: Connection, dialect: str, ran: Ran) -> dict[str, Any]:
    if dialect == "sqlite":
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {ran.sql}", ran.params)
        return {"sql": ran.sql, "plan": [str(r[-1]) for r in rows]}
    rows = conn.exec_driver_sql(f"EXPLAIN {ran.sql}", ran.params)
    out = {"sql": ran.sql, "plan": [str(r[0]) for r in rows]}
    if isinstance(ran.params, Mapping):
        out["generic_plan"] = pg_generic_plan(conn, ran.sql, ran.params)
    return out


def pg_generic_plan(conn: Connection, sql: str, params: Mapping[str, Any]) -> list[str]:
    """EXPLAIN EXECUTE of the statement prepared with ``$n`` parameters, generic plan forced."""
    from psycopg import sql as pgsql

    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    prepared = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql)
    driver = conn.connection.driver_connection
    args = ", ".join(pgsql.Literal(params[n]).as_string(driver) for n in names)
    conn.exec_driver_sql(f"PREPARE bench_identify AS {prepared}")
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    try:
        rows = conn.exec_driver_sql(f"EXPLAIN EXECUTE bench_identify({args})")
        return [str(r[0]) for r in rows]
    finally:
        conn.exec_driver_sql("RESET plan_cache_mode")
        conn.exec_driver_sql("DEALLOCATE bench_identify")


# -- one backend --------------------------------------------------------------------------------


def bench_backend(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    upgrade(backend.db)
    keep = set(random.Random(7).sample(range(args.patients), min(args.patients, args.keep)))
    log(f"{backend.name}: loading {args.patients:,} patients")
    t0 = time.monotonic()
    kept = load_patients(backend.loader(), args.patients, keep)
    load_s = time.monotonic() - t0
    log(f"{backend.name}: loaded in {load_s:.0f} s ({backend.size_mb():,.0f} MB)")
    result: dict[str, Any] = {
        "load": {
            "patients": args.patients,
            "seconds": round(load_s, 1),
            "database_mb": round(backend.size_mb(), 1),
            "method": "executemany, 10k rows a chunk, one transaction"
            if backend.name == "sqlite"
            else "COPY FROM STDIN (psycopg), one transaction, then VACUUM ANALYZE",
        },
        "query_plans": query_plans(backend, plan_samples(kept)),
    }
    result["identify"] = identify_step(backend, kept, args)
    result["pipeline"] = pipeline_step(backend, kept, args)
    result["targets"] = targets(result)
    result["seconds_total"] = round(time.monotonic() - started, 1)
    return result


def targets(result: dict[str, Any]) -> dict[str, Any]:
    ident, pipe = result["identify"], result["pipeline"]
    return {
        f"identify p99 <= {TARGET_P99_MS:g} ms (ins_vali)": _target(
            ident["ins_vali"]["median"]["p99_ms"], TARGET_P99_MS
        ),
        f"identify p99 <= {TARGET_P99_MS:g} ms (local_only)": _target(
            ident["local_only"]["median"]["p99_ms"], TARGET_P99_MS
        ),
        f"pipeline cost 1 - on/off <= {TARGET_COST:.0%}": _target(
            pipe["cost_on_vs_off"], TARGET_COST
        ),
    }


def _target(value: float, limit: float) -> dict[str, Any]:
    return {"value": value, "target": f"<= {limit:g}", "met": bool(value <= limit)}


def run_backend(name: str, args: argparse.Namespace) -> dict[str, Any]:
    context = sqlite_backend() if name == "sqlite" else postgres_backend()
    try:
        with context as backend:
            return bench_backend(backend, args)
    except Unreachable as exc:
        log(f"{name}: skipped ({exc})")
        return {"skipped": str(exc)}


# -- main ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--backends", nargs="+", choices=("sqlite", "postgresql"), default=BACKENDS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5_000, help="timed identify calls a run")
    parser.add_argument("--warmup", type=int, default=500, help="untimed calls before a run")
    parser.add_argument("--identify-budget", type=float, default=15.0, help="seconds a run")
    parser.add_argument("--pipeline-messages", type=int, default=5_000)
    parser.add_argument("--pipeline-runs", type=int, default=5, help="rounds of on and off")
    parser.add_argument("--pipeline-budget", type=float, default=30.0, help="seconds a run")
    parser.add_argument("--keep", type=int, default=50_000, help="patients messages draw from")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logs.configure("warning")  # as the engine under mllp_ingest.py: no line per message
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "benchmark": "identify",
        "started_at": stamp,
        "machine": mi.machine(),
        "source": mi.source_state(),
        "setup": setup(args),
    }
    for name in args.backends:
        report[name] = run_backend(name, args)
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    report["duration_seconds"] = round(time.monotonic() - started, 1)
    text_out = json.dumps(report, indent=2, ensure_ascii=False)
    save_report(text_out, stamp, "identify")
    print(text_out)


def setup(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "patients": args.patients,
        "patient": "qualified identity (ins = valid test NIR, VALI), one IPP (CHU-X, PI)",
        "runs": args.runs,
        "identify": {
            "call": "Filing(IdentityPolicy(accept_test_ins=True)).patient_for(conn, 0, "
            "map_message(oru).patient, now, adt=False)",
            "timed_calls_per_run": args.calls,
            "warmup_calls_per_run": args.warmup,
            "budget_seconds_per_run": args.identify_budget,
            "transaction": "one per run, rolled back",
            "patients_drawn_from": min(args.keep, args.patients),
        },
        "pipeline": {
            "worker": "engine.runtime.wiring.build_worker(repo channels.yaml), batch 64",
            "messages_per_run": args.pipeline_messages,
            "budget_seconds_per_run": args.pipeline_budget,
            "message": "generated ORU^R01 v2.5, 10 OBX, IPP + INS + VALI",
            "off": "Filing.patient_for replaced by one SELECT patient_id FROM "
            "store_patient_identifiers by (value, authority, authority_oid, type_code)",
            "rounds": args.pipeline_runs,
            "order": "one on and one off run a round, alternating which runs first",
        },
        "targets": {"identify_p99_ms": TARGET_P99_MS, "pipeline_cost": TARGET_COST},
    }


if __name__ == "__main__":
    main()
