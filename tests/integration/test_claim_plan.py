"""The pipeline's claim seeks ``(state, id)`` on SQLite, once per pending state: left to
itself, SQLite chose the ``(channel, id)`` index and walked every delivered message of the
channel at each claim (346 ms a claim behind 20,000 delivered messages; 0.35 ms with the seek),
and one ``state IN (...)`` is answered with a sort of every pending row. On PostgreSQL the
distributed sweep reads the index of pending messages even as a generic plan."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql

from engine.db import make_engine
from engine.journal import claim as claim_module
from engine.journal.claim import (
    _LOAD,
    _load,
    _next,
    claim_pending,
    scan_statement,
    stale_or_due,
)
from engine.journal.journal import Journal
from engine.journal.message_tables import messages
from engine.journal.records import NewMessage
from engine.migrate import upgrade


def plans(db: Engine) -> list[str]:
    found = []
    with db.connect() as conn:
        for statement in (scan_statement("sqlite", ("lab", "adt")), scan_statement("sqlite", None)):
            compiled = statement._compiled(db.dialect)
            assert compiled.positions is not None
            params = tuple(None for _ in compiled.positions)
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.sql, params).fetchall()
            found.append("\n".join(str(r[-1]) for r in rows))
    return found


def test_the_claim_seeks_the_state_index_once_per_pending_state(db: Engine) -> None:
    for plan in plans(db):
        assert plan.count("ix_journal_messages_state_id (state=? AND id>?)") == 2, plan
        assert "channel" not in plan and "SCAN journal_messages" not in plan, plan


def test_the_claim_still_keeps_to_the_channels_it_is_given(db: Engine) -> None:
    rows = [
        NewMessage(channel=channel, raw=f"MSH|^~\\&|A|B|C|D|||ORU^R01|{i}|P|2.5".encode())
        for i, channel in enumerate(["lab", "other", "lab", "adt"])
    ]
    journal = Journal(db)
    with db.connect() as conn:
        ids = [a.id for a in journal.append(conn, rows)]
        claimed = claim_pending(conn, datetime.now(UTC), 10, ("adt", "lab"))
        assert [p.id for p in claimed] == [ids[0], ids[2], ids[3]]
        assert claim_pending(conn, datetime.now(UTC), 10, ("oth",)) == []
        conn.execute(messages.update().values(state="delivered"))
        assert claim_pending(conn, datetime.now(UTC), 10, ("adt", "lab")) == []


class _Captured:
    """A connection that keeps the statements given to it (and finds nothing)."""

    def __init__(self) -> None:
        self.statements: list[Any] = []

    def execute(self, statement: Any) -> list[Any]:
        self.statements.append(statement)
        return []


def generic_plans(db: Engine) -> list[str]:
    """The plans PostgreSQL gives the sweep's statements once prepared and run a few times
    (a generic plan: the binds' values unknown), on a journal of mostly ended messages."""
    captured = _Captured()
    now = datetime.now(UTC)
    stale_or_due(cast(Connection, captured), now, now, 50, ["lab", "adt"])
    dollar = postgresql.dialect(paramstyle="numeric_dollar")
    found = []
    with db.connect() as conn:
        conn.exec_driver_sql(
            "INSERT INTO journal_messages (channel, received_at, updated_at, peer, patient_key,"
            " state, attempts, ack_code, charset, size, content_hash, raw, delivered_to)"
            " SELECT CASE WHEN mod(g, 2) = 0 THEN 'lab' ELSE 'adt' END, now(), now(), '',"
            " CASE WHEN mod(g, 3) = 0 THEN NULL ELSE 'p' || mod(g, 500) END,"
            " CASE WHEN g > 19900 THEN 'received' ELSE 'delivered' END,"
            " 0, 'AA', '', 1, 'x', 'x', '' FROM generate_series(1, 20000) g"
        )
        conn.exec_driver_sql("ANALYZE journal_messages")
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        for n, statement in enumerate(captured.statements):
            compiled = statement.compile(
                dialect=dollar, compile_kwargs={"render_postcompile": True}
            )
            conn.exec_driver_sql(f"PREPARE sweep{n} AS {compiled}")
            unknown = ", ".join("NULL" for _ in compiled.positiontup)
            rows = conn.exec_driver_sql(f"EXPLAIN EXECUTE sweep{n}({unknown})").fetchall()
            found.append("\n".join(str(r[0]) for r in rows))
        conn.rollback()
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_sweep_reads_the_index_of_pending_messages_with_a_generic_plan(
    store_url: str,
) -> None:
    """The distributed sweep (``stale_or_due``) names its states as literals: with them bound,
    PostgreSQL's generic plan could not use the partial index of pending messages and read
    every message of the journal (a sequential scan, measured: 21 ms behind 50,000 delivered
    messages, 0.2 ms with the index)."""
    db = make_engine(store_url)
    try:
        upgrade(db)
        plans = generic_plans(db)
    finally:
        db.dispose()
    assert len(plans) == 2
    for plan in plans:
        assert "ix_journal_messages_pending" in plan, plan
        assert "Seq Scan" not in plan, plan


def test_the_load_reads_the_picked_messages_by_primary_key_on_sqlite(db: Engine) -> None:
    statement = _LOAD[False]
    compiled = statement._compiled(db.dialect)
    assert compiled.positions is not None
    params = tuple(None for _ in compiled.positions)
    with db.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.sql, params).fetchall()
    plan = "\n".join(str(r[-1]) for r in rows)
    assert "INTEGER PRIMARY KEY" in plan and "state" not in plan, plan


def test_a_message_ended_between_scan_and_load_is_not_claimed(db: Engine) -> None:
    journal = Journal(db)
    rows = [
        NewMessage(channel="lab", raw=f"MSH|^~\\&|A|B|C|D|||ORU^R01|{i}|P|2.5".encode())
        for i in range(3)
    ]
    with db.connect() as conn:
        ids = [a.id for a in journal.append(conn, rows)]
        picked = _next(conn, datetime.now(UTC), 10, None)
        conn.execute(messages.update().where(messages.c.id == ids[1]).values(state="discarded"))
        assert [p.id for p in _load(conn, picked, lock=False)] == [ids[0], ids[2]]
        conn.rollback()


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_load_reads_the_picked_messages_by_primary_key_on_postgresql(
    store_url: str,
) -> None:
    """Given ``state IN (...)`` as well, PostgreSQL took the (state, id) index and filtered
    the ids, reading every heap page of the pending stretch (2-6 ms a batch of 64)."""
    db = make_engine(store_url)
    dollar = postgresql.dialect(paramstyle="numeric_dollar")
    try:
        upgrade(db)
        with db.connect() as conn:
            conn.exec_driver_sql(
                "INSERT INTO journal_messages (channel, received_at, updated_at, peer, state,"
                " attempts, ack_code, charset, size, content_hash, raw, delivered_to)"
                " SELECT 'lab', now(), now(), '', CASE WHEN g > 15000 THEN 'received'"
                " ELSE 'delivered' END, 0, 'AA', '', 1, 'x', 'x', ''"
                " FROM generate_series(1, 20000) g"
            )
            conn.exec_driver_sql("ANALYZE journal_messages")
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            compiled = _LOAD[True].statement.compile(
                dialect=dollar, compile_kwargs={"render_postcompile": True}
            )
            conn.exec_driver_sql(f"PREPARE load AS {compiled}")
            unknown = ", ".join("NULL" for _ in compiled.positiontup or ())
            plan = "\n".join(
                str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN EXECUTE load({unknown})")
            )
            conn.rollback()
    finally:
        db.dispose()
    assert "Index Scan using pk_journal_messages" in plan, plan
    assert "state" not in plan and "Seq Scan" not in plan, plan  # checked on the rows read


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_scan_is_planned_without_bitmap_scans_and_the_rest_with(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics taken before a burst of intake say few messages are pending: the planner
    then chose a bitmap scan and a sort of every pending entry, the dead entries of delivered
    messages too (14 ms a batch after a burst, 1.2-2 ms in id order, EXPLAIN ANALYZE during
    bench/pipeline_batch.py). The claim plans its scan without bitmap scans, and only it."""
    seen: list[str] = []

    class Spied:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def execute(self, conn: Connection, params: Any) -> Any:
            seen.append(conn.exec_driver_sql("SHOW enable_bitmapscan").scalar_one())
            return self.inner.execute(conn, params)

    real = claim_module.scan_statement
    monkeypatch.setattr(claim_module, "scan_statement", lambda *a: Spied(real(*a)))
    db = make_engine(store_url)
    try:
        upgrade(db)
        rows = [NewMessage(channel="lab", raw=b"MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5")]
        with db.connect() as conn:
            [appended] = Journal(db).append(conn, rows)
            claimed = claim_pending(conn, datetime.now(UTC), 10, ("lab",))
            after = conn.exec_driver_sql("SHOW enable_bitmapscan").scalar_one()
            conn.rollback()
    finally:
        db.dispose()
    assert [p.id for p in claimed] == [appended.id]
    assert seen == ["off"] and after == "on"
