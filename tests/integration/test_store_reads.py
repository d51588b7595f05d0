"""The record-store reads that code outside ``engine/store/`` used to write itself: the
operators' patient search (engine.store.patients, for engine.admin.patients), the open-review
condition of the journal prune (engine.store.identity_reviews), the rectification requests of
``aiguillage record rectifications`` (engine.store.rectifications) and the tables read by name
for channel tests (engine.store.table_reads). SQLite, then PostgreSQL (``migrated_db``).

Every store holds a decoy beside what is asked for (another facility's identifier, a closed
review, another patient's request, another row of the table), so a read that returned too much
or the wrong rows fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, insert, select
from sqlalchemy.engine import Engine

from engine.admin.patients import patient_keys
from engine.identity.model import LocalId
from engine.journal.message_tables import State, messages
from engine.store import identity_reviews as queue
from engine.store import merges, patients, rectifications, table_reads
from engine.store.record_tables import rectifications as rectification_rows
from tests.integration import admin_seed as seed

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
INS_S, INS_A, INS_B, INS_C = (
    "279035121518989",
    "180012A00100123",
    "290017512345678",
    "160057512345601",
)


def new_patient(conn: Connection, ins: str, *ids: LocalId, name: str = "PAT") -> int:
    pid = patients.create(conn, {"ins": ins, "birth_name": name}, None, NOW)
    patients.add_local_ids(conn, pid, list(ids), None, NOW)
    return pid


# The operators' patient search (engine.store.patients)


def test_ids_with_ins_names_the_patient_holding_it_merged_or_not(migrated_db: Engine) -> None:
    with migrated_db.begin() as conn:
        survivor = new_patient(conn, INS_S)
        absorbed = new_patient(conn, INS_A)
        new_patient(conn, "")  # no INS: never found, even by an empty one
        merges.record(conn, survivor, absorbed, 1, NOW, {})
        patients.change(conn, absorbed, {"merged_into": survivor}, None, NOW, "merged")
    with migrated_db.connect() as conn:
        assert patients.ids_with_ins(conn, INS_S) == [survivor]
        assert patients.ids_with_ins(conn, INS_A) == [absorbed]  # not followed to the survivor
        assert patients.ids_with_ins(conn, INS_B) == []
        assert patients.ids_with_ins(conn, "") == []


def test_ids_with_local_id_matches_the_authority_by_name_or_oid_and_lists_each_once(
    migrated_db: Engine,
) -> None:
    with migrated_db.begin() as conn:
        chu_x = new_patient(
            conn,
            INS_S,
            LocalId("000003", "CHU-X", "1.2.250.1.1", "PI"),
            LocalId("000003", "CHU-Z", "", "PI"),  # the same value twice: listed once
        )
        chu_y = new_patient(conn, INS_A, LocalId("000003", "CHU-Y", "1.2.250.1.2", "PI"))
        new_patient(conn, INS_B, LocalId("000004", "CHU-X", "1.2.250.1.1", "PI"))
    with migrated_db.connect() as conn:
        assert patients.ids_with_local_id(conn, "000003", "CHU-X") == [chu_x]
        assert patients.ids_with_local_id(conn, "000003", "1.2.250.1.2") == [chu_y]
        assert patients.ids_with_local_id(conn, "000003", "CHU-Z") == [chu_x]
        assert sorted(patients.ids_with_local_id(conn, "000003")) == sorted([chu_x, chu_y])
        assert patients.ids_with_local_id(conn, "000003", "CHU-W") == []
        assert patients.ids_with_local_id(conn, "000005") == []


def merged_store(conn: Connection) -> dict[str, int]:
    """A survivor with a patient absorbed into it, a merge into it that was undone, and a
    merge between two other patients."""
    survivor = new_patient(conn, INS_S, LocalId("000003", "CHU-X", "1.2.250.1.1", "PI"))
    absorbed = new_patient(conn, INS_A, LocalId("000009", "CHU-Y", "", "PI"))
    undone = new_patient(conn, INS_B, LocalId("000011", "CHU-X", "", "PI"))
    other = new_patient(conn, "", LocalId("000012", "CHU-X", "", "PI"))
    elsewhere = new_patient(conn, INS_C, LocalId("000013", "CHU-X", "", "PI"))
    merges.record(conn, survivor, absorbed, 1, NOW, {})
    merge = merges.record(conn, survivor, undone, 2, NOW, {})
    merges.mark_undone(conn, merge, NOW + timedelta(hours=1), "alice", "not the same person")
    merges.record(conn, other, elsewhere, 3, NOW, {})
    return {"survivor": survivor, "absorbed": absorbed, "other": other}


def test_held_identifiers_add_those_of_the_patients_absorbed_by_a_merge_not_undone(
    migrated_db: Engine,
) -> None:
    with migrated_db.begin() as conn:
        ids = merged_store(conn)
    with migrated_db.connect() as conn:
        held = patients.held_identifiers(conn, [ids["survivor"]])
        assert sorted(held.local) == [
            ("000003", "CHU-X", "1.2.250.1.1"),
            ("000009", "CHU-Y", ""),
        ]
        assert sorted(held.ins) == sorted([INS_S, INS_A])
        # A patient with no INS gives none; its absorbed patient's counts.
        other = patients.held_identifiers(conn, [ids["other"]])
        assert sorted(other.local) == [("000012", "CHU-X", ""), ("000013", "CHU-X", "")]
        assert other.ins == [INS_C]
        assert patients.held_identifiers(conn, []) == patients.HeldIdentifiers([], [])


def test_a_search_by_the_survivors_ins_gives_the_keys_of_the_patient_it_absorbed(
    migrated_db: Engine,
) -> None:
    with migrated_db.begin() as conn:
        merged_store(conn)
    with migrated_db.connect() as conn:
        found = patient_keys(conn, INS_S)
    assert sorted(found.keys) == ["000003^1.2.250.1.1", "000003^CHU-X", "000009^CHU-Y"]
    assert found.prefixes == ()
    assert sorted(found.hold_keys) == sorted(
        [
            f"ins:{INS_S}",
            "local:000003^CHU-X",
            "local:000003^1.2.250.1.1",
            "local:000009^CHU-Y",
            f"ins:{INS_A}",
        ]
    )
    assert found.hold_keys[0] == f"ins:{INS_S}"


# The journal prune's open-review condition (engine.store.identity_reviews)


def test_open_review_names_only_the_messages_an_open_review_or_notice_names(
    migrated_db: Engine,
) -> None:
    conflict, notice, attached, rejected, none = (
        seed.message(migrated_db, f"R{n}", state=State.DELIVERED) for n in range(5)
    )
    with migrated_db.begin() as conn:
        queue.add(conn, conflict, "lab", "903", "traits differ", [], NOW)
        queue.add(conn, notice, "lab", queue.HOMONYM, "same traits", [], NOW)
        for mid, status in ((attached, queue.ATTACHED), (rejected, queue.REJECTED)):
            queue.add(conn, mid, "lab", "905", "ambiguous", [], NOW)
            [open_one] = [r for r in queue.reviews(conn) if r["message_id"] == mid]
            queue.resolve(conn, open_one["id"], status, "alice", "checked", NOW)
    m = messages.c
    with migrated_db.connect() as conn:
        named = set(conn.execute(select(m.id).where(queue.open_review_names(m.id))).scalars())
        left = set(conn.execute(select(m.id).where(~queue.open_review_names(m.id))).scalars())
    assert named == {conflict, notice}
    assert left == {attached, rejected, none}


# The rectification requests (engine.store.rectifications)


def test_rectification_requests_are_listed_oldest_first_each_with_its_patient(
    migrated_db: Engine,
) -> None:
    with migrated_db.begin() as conn:
        first = new_patient(conn, INS_S)
        second = new_patient(conn, INS_A)
        for pid, text, status, at in (
            # Requested later than the next one, but stored first: the id orders them.
            (first, "Allergie erronée", "open", NOW + timedelta(days=1)),
            (second, "Mauvais groupe sanguin", "done", NOW),
            (first, "Vaccin manquant", "open", NOW + timedelta(days=2)),
        ):
            conn.execute(
                insert(rectification_rows).values(
                    patient_id=pid, text=text, requested_by="patient", status=status, at=at
                )
            )
    with migrated_db.connect() as conn:
        found = rectifications.requests(conn)
    assert [r.id for r in found] == sorted(r.id for r in found)
    assert [(r.patient_id, r.text, r.status, r.at, r.requested_by) for r in found] == [
        (first, "Allergie erronée", "open", NOW + timedelta(days=1), "patient"),
        (second, "Mauvais groupe sanguin", "done", NOW, "patient"),
        (first, "Vaccin manquant", "open", NOW + timedelta(days=2), "patient"),
    ]


def test_no_rectification_request_is_an_empty_list(migrated_db: Engine) -> None:
    with migrated_db.connect() as conn:
        assert rectifications.requests(conn) == []


# Tables read by name for the channel tests (engine.store.table_reads)


def test_a_table_is_counted_and_filtered_by_name_store_and_journal_alike(
    migrated_db: Engine,
) -> None:
    with migrated_db.begin() as conn:
        chu_x = new_patient(conn, INS_S, LocalId("000003", "CHU-X", "", "PI"), name="UN")
        new_patient(conn, INS_A, LocalId("000003", "CHU-Y", "", "PI"), name="DEUX")
        new_patient(conn, "", LocalId("000004", "CHU-X", "", "PI"), name="TROIS")
    mid = seed.message(migrated_db, "T1", state=State.DELIVERED)
    with migrated_db.connect() as conn:
        assert table_reads.count(conn, "store_patients") == 3
        assert table_reads.count(conn, "store_patient_identifiers") == 3
        assert table_reads.count(conn, "journal_messages") == 1
        assert table_reads.count(conn, "store_observations") == 0
        [row] = table_reads.rows_where(
            conn, "store_patient_identifiers", {"value": "000003", "authority": "CHU-X"}
        )
        assert row["patient_id"] == chu_x
        every = table_reads.rows_where(conn, "store_patients", {})
        assert sorted(r["birth_name"] for r in every) == ["DEUX", "TROIS", "UN"]
        [journaled] = table_reads.rows_where(conn, "journal_messages", {"error_code": None})
        assert journaled["id"] == mid
        assert table_reads.rows_where(conn, "journal_messages", {"error_code": "902"}) == []
        assert table_reads.rows_where(conn, "store_patients", {"birth_name": "QUATRE"}) == []


def test_an_unknown_table_or_column_is_an_error_not_zero_rows(migrated_db: Engine) -> None:
    with migrated_db.connect() as conn:
        with pytest.raises(ValueError, match="unknown table 'store_patient'"):
            table_reads.count(conn, "store_patient")
        with pytest.raises(ValueError, match="unknown table 'nope'"):
            table_reads.rows_where(conn, "nope", {})
        with pytest.raises(KeyError):
            table_reads.rows_where(conn, "store_patients", {"no_such_column": 1})
