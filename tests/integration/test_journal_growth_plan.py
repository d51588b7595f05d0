"""The claim stays cheap as the journal grows (issue 11): on PostgreSQL, even as the prepared
statement's generic plan, it reads the partial index of pending messages (migration 0017) in
id order, not the dead entries that updates to delivered leave in ``(state, id)`` until VACUUM
(a cost growing with the journal: this machine's PostgreSQL runs without autovacuum)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from engine.db import make_engine
from engine.journal.claim import claim_pending, scan_statement
from engine.journal.journal import Journal
from engine.journal.message_tables import messages
from engine.journal.records import NewMessage
from engine.migrate import upgrade


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    db = make_engine(postgres_url)
    upgrade(db)
    yield db
    db.dispose()


def churn(db: Engine, rounds: int, size: int) -> None:
    """Messages journaled, then delivered: each leaves a dead ('received', id) entry."""
    journal = Journal(db)
    n = 0
    for _ in range(rounds):
        rows = []
        for _ in range(size):
            raw = f"MSH|^~\\&|A|B|C|D|||ORU^R01|G{n}|P|2.5".encode()
            rows.append(NewMessage(channel="lab", raw=raw))
            n += 1
        with db.connect() as conn:
            journal.append(conn, rows)
        with db.begin() as conn:
            conn.execute(messages.update().values(state="delivered"))


@pytest.mark.postgres
def test_the_generic_plan_of_the_received_claim_reads_the_pending_index_in_id_order(
    pg: Engine,
) -> None:
    churn(pg, rounds=20, size=200)
    with pg.connect() as conn:  # statistics, as autovacuum's ANALYZE keeps them
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "ANALYZE journal_messages"
        )
    sql = scan_statement("postgresql", ("lab", "adt"))._compiled(pg.dialect).sql
    # psycopg's pyformat placeholders, as the driver sends them: $1, $2... for PREPARE
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    prepared = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", sql)
    values = {"after": "0", "channel_1": "''", "ch0": "'lab'", "ch1": "'adt'", "limit": "64"}
    values["now"] = "now()"
    args = ", ".join(values[n] for n in names)
    with pg.connect() as conn:
        conn.execute(text("SET plan_cache_mode = force_generic_plan"))
        conn.exec_driver_sql(f"PREPARE claim_received AS {prepared}")
        plan = "\n".join(
            r[0]
            for r in conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim_received({args})"
            )
        )
        conn.exec_driver_sql("DEALLOCATE claim_received")
        conn.rollback()
    assert "ix_journal_messages_pending" in plan, plan
    assert "Bitmap" not in plan and "Sort" not in plan, plan


def test_the_claim_takes_pending_messages_in_order_with_the_states_as_literals(
    store_url: str,
) -> None:
    db = make_engine(store_url)
    try:
        upgrade(db)
        churn(db, rounds=2, size=5)
        journal = Journal(db)
        rows = [
            NewMessage(channel=ch, raw=f"MSH|^~\\&|A|B|C|D|||ORU^R01|L{i}|P|2.5".encode())
            for i, ch in enumerate(["lab", "other", "lab"])
        ]
        with db.connect() as conn:
            ids = [a.id for a in journal.append(conn, rows)]
            claimed = claim_pending(conn, datetime.now(UTC), 10, ("lab",))
            assert [p.id for p in claimed] == [ids[0], ids[2]]
            conn.execute(
                messages.update()
                .where(messages.c.id == ids[0])
                .values(state="retrying", next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC))
            )
            claimed = claim_pending(conn, datetime.now(UTC), 10, ("lab",))
            assert [p.id for p in claimed] == [ids[0], ids[2]]  # a due retry comes first
            conn.rollback()
    finally:
        db.dispose()
