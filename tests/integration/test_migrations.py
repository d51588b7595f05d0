"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from engine.db import make_engine, metadata
from engine.journal import message_tables as journal_models
from engine.migrate import upgrade
from engine.store import record_core as store_models

MODELS = (journal_models, store_models)


def test_upgrade_to_head_matches_the_models(store_url: str) -> None:
    db = make_engine(store_url)
    try:
        upgrade(db)
        upgrade(db)  # a second run is a no-op
        with db.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"models and migrations disagree; add a revision: {diff}"
        names = set(metadata.tables)
        assert {"journal_messages", "journal_events", "store_patients"} <= names
    finally:
        db.dispose()


def test_upgrading_a_store_with_patients_moves_each_ins_to_its_patient(store_url: str) -> None:
    db = make_engine(store_url)
    try:
        upgrade(db, "0001")
        with db.begin() as conn:
            now = "2024-03-06 10:00:00"
            for pid, given in ((1, "DOMINIQUE MARIE"), (2, "JEAN"), (3, "PAUL"), (4, "")):
                conn.execute(
                    text(
                        "INSERT INTO store_patients (id, family_name, given_names, created_at, "
                        "updated_at) VALUES (:id, :family, :given, :now, :now)"
                    ),
                    {"id": pid, "family": f"NAME{pid}", "given": given, "now": now},
                )
            ids = [
                (1, "IPP1", "PI", ""),
                (1, "279035121518989", "INS", "1.2.250.1.213.1.4.10"),
                (2, "IPP2", "PI", ""),
                # Before 0002 an INS was matched with its CX-4 text: two patients could share one.
                (2, "185057512300143", "INS", "1.2.250.1.213.1.4.8"),
                (3, "185057512300143", "INS", "1.2.250.1.213.1.4.8"),
            ]
            for n, (pid, value, kind, oid) in enumerate(ids):
                conn.execute(
                    text(
                        "INSERT INTO store_patient_identifiers (patient_id, value, authority, "
                        "authority_oid, type_code) VALUES (:p, :v, :a, :o, :t)"
                    ),
                    {"p": pid, "v": value, "a": f"A{n}", "o": oid, "t": kind},
                )
        upgrade(db)
        with db.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, ins, ins_oid, identity_status, birth_name, first_given_name "
                    "FROM store_patients ORDER BY id"
                )
            ).all()
            assert [tuple(r) for r in rows] == [
                (1, "279035121518989", "1.2.250.1.213.1.4.10", "VALI", "NAME1", "DOMINIQUE"),
                (2, "", "", "", "NAME2", "JEAN"),
                (3, "", "", "", "NAME3", "PAUL"),
                (4, "", "", "", "NAME4", ""),
            ]
            kinds = conn.execute(text("SELECT type_code FROM store_patient_identifiers")).all()
            assert sorted(r[0] for r in kinds) == ["PI", "PI"]
            withheld = conn.execute(
                text("SELECT patient_id FROM store_identity_events WHERE event = 'ins_withheld'")
            ).all()
            assert sorted(r[0] for r in withheld) == [2, 3]
    finally:
        db.dispose()
