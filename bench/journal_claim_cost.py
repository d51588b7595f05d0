"""The PostgreSQL claim's cost as the journal grows, old statement against new.

In a fresh schema (migrated, so with ix_journal_messages_pending), ``--rounds`` rounds each
journal ``--step`` messages (INSERT ... SELECT generate_series, 1.6 KB raw) and deliver them
(one UPDATE: a dead ('received', id) entry each; autovacuum is off on this machine, and the
bench runs no VACUUM), then ANALYZE (as autovacuum would), 64 pending messages left. After
each round the claim's scan runs 50 times through psycopg (prepared from the fifth run, as
in the engine) in two forms: ``bind`` (the states as binds, as before 396de26)
and ``literal`` (``state IN ('received', 'retrying')``, now). Median ms a claim; JSON on stdout.

``python bench/journal_claim_cost.py [--rounds 5] [--step 40000]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.db import make_engine  # noqa: E402
from engine.journal.claim import scan_statement  # noqa: E402
from engine.migrate import upgrade  # noqa: E402

URL = os.environ.get(
    "AIGUILLAGE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
INSERT = """INSERT INTO journal_messages (channel, received_at, updated_at, peer, state,
 attempts, ack_code, charset, size, content_hash, raw, delivered_to, patient_key)
 SELECT 'lab', now(), now(), '', 'received', 0, 'AA', '', 1600, md5(random()::text),
 convert_to(repeat('x', 1600), 'UTF8'), '', 'k' || (g % 2000) FROM generate_series(1, :n) g"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--step", type=int, default=40_000)
    args = parser.parse_args()
    base = make_engine(URL)
    schema = f"bench_claim_{uuid.uuid4().hex[:10]}"
    with base.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = make_engine(f"{URL}?options=-csearch_path%3D{schema}")
    literal_sql = scan_statement("postgresql", ("lab",))._compiled(db.dialect).sql
    pending = "journal_messages.state IN ('received', 'retrying')"
    assert pending in literal_sql, literal_sql
    bind_sql = literal_sql.replace(pending, "journal_messages.state IN (%(s1)s, %(s2)s)")
    params = {"after": 0, "channel_1": "", "ch0": "lab", "limit": 64, "now": datetime.now(UTC)}
    out = []
    try:
        upgrade(db)
        for r in range(args.rounds):
            with db.begin() as conn:
                conn.execute(text(INSERT), {"n": args.step})
                conn.execute(text("UPDATE journal_messages SET state = 'delivered'"))
                conn.execute(text(INSERT), {"n": 64})
            with db.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "ANALYZE journal_messages"
                )
            row: dict[str, object] = {"delivered": args.step * (r + 1)}
            for name, sql, extra in (
                ("bind", bind_sql, {"s1": "received", "s2": "retrying"}),
                ("literal", literal_sql, {}),
            ):
                raw = db.raw_connection()
                try:
                    timings = []
                    for _ in range(50):
                        with raw.cursor() as cur:
                            started = time.perf_counter()
                            cur.execute(sql, {**params, **extra})
                            got = len(cur.fetchall())
                            timings.append(time.perf_counter() - started)
                    raw.rollback()
                finally:
                    raw.close()
                assert got == 64, got
                row[f"{name}_ms"] = round(1000 * statistics.median(timings[10:]), 3)
            out.append(row)
            sys.stderr.write(f"{row}\n")
    finally:
        db.dispose()
        with base.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        base.dispose()
    print(
        json.dumps(
            {"benchmark": "journal_claim_cost", "loadavg": os.getloadavg(), "rounds": out}, indent=2
        )
    )


if __name__ == "__main__":
    main()
