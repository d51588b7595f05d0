"""The table operations under the identity-review queue and the merge undo, each on its own:
the review rows (engine.store.identity_reviews), a message leaving review and its channel
(engine.journal.lookups), a patient's own row and identifiers (engine.store.patients), a
document's earlier versions (engine.store.identity_moves). SQLite, then PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import NoResultFound

from engine.journal import lookups
from engine.journal.message_tables import State, events, messages
from engine.store import identity_moves, patients
from engine.store import identity_reviews as queue
from engine.store.documents import documents
from engine.store.record_core import patients as patient_rows
from tests.integration import admin_seed as seed

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


def test_a_review_is_added_reopened_resolved_and_read_back(migrated_db: Engine) -> None:
    mid = seed.message(migrated_db, "Q1", state=State.REVIEW)
    with migrated_db.begin() as conn:
        assert not queue.reopen(conn, mid, "903", "none yet", [1])
        queue.add(conn, mid, "lab", "903", "traits differ", [1], NOW)
        queue.add(conn, mid, "lab", queue.HOMONYM, "same traits", [1, 2], NOW)
        assert queue.reopen(conn, mid, "904", "two candidates", [1, 2])
    with migrated_db.connect() as conn:
        conflict, notice = queue.reviews(conn)
        assert queue.review(conn, conflict["id"]) == conflict
        assert queue.review(conn, notice["id"] + 1) is None
    # The open conflict took the new reason; the notice is not a conflict: left as it was.
    assert (conflict["code"], conflict["reason"], conflict["candidates"]) == (
        "904",
        "two candidates",
        [1, 2],
    )
    assert (conflict["channel"], conflict["status"], conflict["patient_id"]) == (
        "lab",
        "open",
        None,
    )
    assert (notice["code"], notice["reason"], notice["candidates"]) == (
        "homonym",
        "same traits",
        [1, 2],
    )
    patient_id = seed.patient(migrated_db)
    with migrated_db.begin() as conn:
        assert queue.attached_patient(conn, mid) is None
        queue.resolve(conn, conflict["id"], queue.ATTACHED, "alice", "checked", NOW, patient_id)
        queue.resolve(conn, notice["id"], queue.DISMISSED, "bob", "seen", NOW)
    with migrated_db.connect() as conn:
        assert queue.attached_patient(conn, mid) == patient_id
        assert queue.reviews(conn) == []
        assert [r["status"] for r in queue.reviews(conn, None)] == ["attached", "dismissed"]
        [done] = queue.reviews(conn, queue.ATTACHED)
    assert (done["resolved_by"], done["resolution_reason"], done["resolved_at"]) == (
        "alice",
        "checked",
        NOW,
    )
    # Once resolved, a new failure of the message opens a new review.
    with migrated_db.begin() as conn:
        assert not queue.reopen(conn, mid, "903", "again", [])


def test_ending_a_review_moves_a_waiting_message_and_records_a_filed_ones_state(
    migrated_db: Engine,
) -> None:
    waiting = seed.message(migrated_db, "W1", state=State.REVIEW)
    filed = seed.message(migrated_db, "F1", state=State.DELIVERED)
    with migrated_db.begin() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.id == waiting)
            .values(attempts=3, next_attempt_at=NOW + timedelta(hours=1))
        )
        assert lookups.end_review(
            conn, waiting, State.RECEIVED, "identity_attached", "ok", "al", NOW
        )
        assert not lookups.end_review(
            conn, filed, State.DISCARDED, "identity_rejected", "no", "bo", NOW
        )
    with migrated_db.connect() as conn:
        m = messages.c
        rows = conn.execute(
            select(m.id, m.state, m.attempts, m.next_attempt_at).where(m.id.in_([waiting, filed]))
        ).all()
        e = events.c
        logged = conn.execute(
            select(e.message_id, e.state, e.attempt, e.stage, e.code, e.reason, e.actor)
            .where(e.stage == "operator")
            .order_by(e.id)
        ).all()
    assert {r[0]: tuple(r[1:]) for r in rows} == {
        waiting: ("received", 0, None),
        filed: ("delivered", 0, None),
    }
    assert [tuple(r) for r in logged] == [
        (waiting, "received", 0, "operator", "identity_attached", "ok", "al"),
        (filed, "delivered", 0, "operator", "identity_rejected", "no", "bo"),
    ]


def test_the_channel_of_a_message(migrated_db: Engine) -> None:
    mid = seed.message(migrated_db, "C1", channel="radiology")
    with migrated_db.connect() as conn:
        assert lookups.channel_of(conn, mid) == "radiology"
        assert lookups.channel_of(conn, mid + 1) is None


def test_a_patients_own_row_and_local_identifiers(migrated_db: Engine) -> None:
    survivor = seed.patient(migrated_db)
    absorbed = seed.patient(migrated_db, ins="", local=("000004", "CHU-X"))
    with migrated_db.begin() as conn:
        conn.execute(
            update(patient_rows).where(patient_rows.c.id == absorbed).values(merged_into=survivor)
        )
    with migrated_db.connect() as conn:
        assert patients.standing(conn, survivor) == (seed.INS, None)
        # Not followed to the survivor (by_id follows it).
        assert patients.standing(conn, absorbed) == patients.Standing("", survivor)
        assert patients.local_ids(conn, survivor) == [("000003", "CHU-X", "")]
        assert patients.local_ids(conn, absorbed) == [("000004", "CHU-X", "")]
        assert patients.local_ids(conn, absorbed + 1) == []
        with pytest.raises(NoResultFound):
            patients.standing(conn, absorbed + 1)


def test_whether_a_document_was_stored_by_a_moment(migrated_db: Engine) -> None:
    patient_id = seed.patient(migrated_db)
    with migrated_db.begin() as conn:
        conn.execute(
            insert(documents).values(
                patient_id=patient_id,
                document_id="1.2.3^DOC",
                version=1,
                status="current",
                sha256="0" * 64,
                content=b"",
                stored_at=NOW,
                updated_at=NOW,
            )
        )
    with migrated_db.connect() as conn:
        assert identity_moves.stored_by(conn, "1.2.3^DOC", NOW)
        assert identity_moves.stored_by(conn, "1.2.3^DOC", NOW + timedelta(seconds=1))
        assert not identity_moves.stored_by(conn, "1.2.3^DOC", NOW - timedelta(seconds=1))
        assert not identity_moves.stored_by(conn, "1.2.3^OTHER", NOW)
