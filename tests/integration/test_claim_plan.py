"""The pipeline's claim seeks ``(state, id)`` on SQLite, once per pending state: left to
itself, SQLite chose the ``(channel, id)`` index and walked every delivered message of the
channel at each claim (346 ms a claim behind 20,000 delivered messages; 0.35 ms with the seek),
and one ``state IN (...)`` is answered with a sort of every pending row."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from engine.journal.claim import claim_pending, scan_statement
from engine.journal.journal import Journal
from engine.journal.message_tables import messages
from engine.journal.records import NewMessage


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
