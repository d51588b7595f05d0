"""The journal's ``(state, id)`` index leaves the delivered messages out (migration 0018):
delivering a message takes its entry out, and every list by state is still read from an
index on both databases (the claim's pending states, the console's dead letters, held, review,
filtered and discarded messages). The migration goes down and up again."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, Select, inspect, select, update

from engine.journal import lookups, search
from engine.journal.journal import Journal
from engine.journal.message_tables import State, messages
from engine.journal.records import NewMessage
from engine.migrate import alembic_config, upgrade

_m = messages.c
#: Every state but delivered: those the index holds.
INDEXED = [s for s in State if s != State.DELIVERED]


@pytest.fixture
def db(migrated_db: Engine) -> Engine:
    return migrated_db


def journal_some(db: Engine, count: int) -> list[int]:
    rows = [
        NewMessage(
            channel="lab",
            raw=f"MSH|^~\\&|A|B|C|D|||ORU^R01|X{i}|P|2.5\rPID|1||P{i}^^^H".encode(),
            control_id=f"X{i}",
            message_type="ORU",
            patient_key=f"P{i}^H",
        )
        for i in range(count)
    ]
    with db.connect() as conn:
        return [a.id for a in Journal(db).append(conn, rows)]


def plan(db: Engine, query: Select[tuple[int]]) -> str:
    """The plan the database makes for ``query`` with its parameters bound (as they run)."""
    with db.connect() as conn:
        compiled = query.compile(dialect=db.dialect)
        sql = str(compiled)
        if db.dialect.name == "sqlite":
            params = tuple(compiled.params[k] for k in compiled.positiontup or ())
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            return "\n".join(str(r[-1]) for r in rows)
        rows = conn.exec_driver_sql("EXPLAIN " + sql, compiled.params).fetchall()
        return "\n".join(str(r[0]) for r in rows)


def test_every_state_is_found_by_search_and_the_dead_letters_list(db: Engine) -> None:
    ids = journal_some(db, len(State))
    with db.begin() as conn:
        for ident, state in zip(ids, State, strict=True):
            conn.execute(update(messages).where(_m.id == ident).values(state=state))
    with db.connect() as conn:
        for n, state in enumerate(State):
            found = search.search(conn, search.MessageFilter(state=state))
            assert [r["id"] for r in found] == [ids[n]], state
            assert search.count(conn, search.MessageFilter(state=state)) == 1, state
        dead = lookups.dead_letters(conn)
        assert [r["id"] for r in dead] == [ids[list(State).index(State.DEAD_LETTERED)]]


@pytest.mark.parametrize("state", INDEXED)
def test_a_list_of_a_state_not_delivered_reads_the_state_index(db: Engine, state: State) -> None:
    journal_some(db, 3)
    query = select(_m.id).where(_m.state == state).order_by(_m.id).limit(50)
    assert "ix_journal_messages_state_id" in plan(db, query)


def test_the_dead_letters_list_reads_the_state_index(db: Engine) -> None:
    dead = select(_m.id).where(*lookups._dead_letter_filter("lab", None, None))
    assert "ix_journal_messages_state_id" in plan(db, dead.order_by(_m.id).limit(50))


def test_the_state_index_leaves_the_delivered_messages_out(db: Engine) -> None:
    with db.connect() as conn:
        if db.dialect.name == "sqlite":
            sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_journal_messages_state_id'"
        else:
            sql = (
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname = 'ix_journal_messages_state_id'"
            )
        definition = str(conn.exec_driver_sql(sql).scalar())
    where = definition.partition("WHERE")[2]
    assert all(f"'{s.value}'" in where for s in INDEXED), definition
    assert "delivered'" not in where.replace("dead_lettered'", ""), definition


def test_the_migration_goes_down_to_the_full_state_index_and_up_again(db: Engine) -> None:
    cfg = alembic_config(db)
    command.downgrade(cfg, "0017")
    journal_some(db, 2)
    query = select(_m.id).where(_m.state == State.DELIVERED).order_by(_m.id).limit(5)
    if db.dialect.name == "sqlite":  # the full index again: it serves delivered too
        assert "ix_journal_messages_state_id" in plan(db, query)
    upgrade(db)
    with db.connect() as conn:
        names = {i["name"] for i in inspect(conn).get_indexes("journal_messages")}
    assert "ix_journal_messages_state_id" in names
    assert "ix_journal_messages_state_id" not in plan(db, query)
    assert len(journal_some(db, 1)) == 1
