"""The identify step's lookups use their indexes (a full scan of a million patients per
message was measured at 140 ms: bench/identify.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from engine.fastsql import FastStatement
from engine.store.patients import _lookup


def plan(db: Engine, statement: FastStatement, params: tuple[Any, ...]) -> str:
    sql = statement._compiled(db.dialect).sql
    with db.connect() as conn:
        if db.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            return "\n".join(str(r[-1]) for r in rows)
        # A generic plan (the value unknown, as for a prepared statement) with sequential scans
        # priced out: a usable index is always chosen.
        conn.execute(text("SET enable_seqscan = off"))
        conn.execute(text("SET plan_cache_mode = force_generic_plan"))
        sql = sql.replace("%(i0)s", "$1").replace("%(v0)s", "$1")
        conn.exec_driver_sql(f"PREPARE lookup(text) AS {sql}")
        return "\n".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN EXECUTE lookup('x')"))


def test_the_ins_lookup_uses_the_partial_unique_index(store_db: Engine) -> None:
    assert "uq_store_patients_ins" in plan(store_db, _lookup(1, 0), ("279035121518989",))


def test_the_local_identifier_lookup_uses_the_identifier_index(store_db: Engine) -> None:
    found = plan(store_db, _lookup(0, 1), ("IPP1",))
    assert "store_patient_identifiers" in found
    assert "SCAN store_patient_identifiers" not in found and "Seq Scan" not in found


def test_one_round_trip_looks_up_the_ins_and_the_local_identifier_by_index(
    store_db: Engine,
) -> None:
    found = plan(store_db, _lookup(1, 1), ("279035121518989", "IPP1"))
    assert "uq_store_patients_ins" in found
    assert "SCAN store_patients" not in found and "Seq Scan" not in found
