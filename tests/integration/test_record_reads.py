"""The record's reads (engine.store.record_queries, engine.store.record_access): a read of a
record is a fixed number of statements whatever its size (no statement per document), lists
leave out what they do not show, and the extracts read in one statement come in the order the
record shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine

from engine.db import make_engine, metadata
from engine.record.model import Actor, Role
from engine.store import record_access, record_queries
from engine.store.documents import documents, reimbursements, summary_entries
from engine.store.record_core import encounters, patients
from engine.store.record_tables import personal_documents, statuses
from tests.conftest import store_tables

NOW = datetime(2026, 1, 1, tzinfo=UTC)
INS = "279035121518989"
FACILITY = "CHU-X"
DOCTOR = Actor(Role.PROFESSIONAL, "10000000001", facility=FACILITY)


def seed(conn: Connection, n_docs: int) -> int:
    """A patient with an open record, a visit at FACILITY, ``n_docs`` documents (every third
    INVISIBLE_PATIENT), a reimbursement row and a vaccination per document, a personal note."""
    pid = conn.execute(
        patients.insert().values(ins=INS, created_at=NOW, updated_at=NOW).returning(patients.c.id)
    ).scalar_one()
    conn.execute(statuses.insert().values(patient_id=pid, state="open", updated_at=NOW))
    conn.execute(
        encounters.insert().values(
            patient_id=pid,
            visit_number="V1",
            visit_authority=FACILITY,
            status="open",
            created_at=NOW,
            updated_at=NOW,
        )
    )
    for n in range(n_docs):
        at = NOW - timedelta(days=n)
        row = conn.execute(
            documents.insert()
            .values(
                patient_id=pid,
                document_id=f"1.2.250.9.{n}",
                version=1,
                type_code="11502-2",
                title=f"Document {n}",
                authored_at=at,
                author_id="1.2.250.1.71.4.2.1^810000000099",
                facility=FACILITY,
                invisible_patient=n % 3 == 0,
                status="current",
                sha256="0" * 64,
                content=b"<ClinicalDocument/>" + b" " * 5000,
                stored_at=at,
                updated_at=at,
            )
            .returning(documents.c.id)
        ).scalar_one()
        day = at.strftime("%Y%m%d")
        conn.execute(
            reimbursements.insert().values(
                patient_id=pid, document_row=row, category="medicine", date=day[:6] + "01"
            )
        )
        conn.execute(
            summary_entries.insert().values(
                patient_id=pid, document_row=row, kind="vaccination", start=day[:4]
            )
        )
    conn.execute(
        personal_documents.insert().values(
            patient_id=pid, kind="document", title="Note", sha256="0" * 64, created_at=NOW
        )
    )
    return int(pid)


def store(tmp_path: Path, name: str) -> Engine:
    db = make_engine(f"sqlite:///{tmp_path / name}")
    with db.begin() as conn:
        metadata.create_all(conn, tables=store_tables())
    return db


def statements_of_a_read(db: Engine) -> list[str]:
    """The SQL statements SQLite runs for one record view by a professional."""
    seen: list[str] = []
    with db.connect() as conn:
        conn.connection.driver_connection.set_trace_callback(seen.append)  # type: ignore[union-attr]
        view = record_access.record_view(conn, DOCTOR, INS, NOW)
        conn.commit()
        conn.connection.driver_connection.set_trace_callback(None)  # type: ignore[union-attr]
    assert view["access"]["basis"] == "care_team"
    return [s.split()[0].upper() for s in seen if s.split()[0].upper() in ("SELECT", "INSERT")]


def test_a_record_read_is_the_same_few_statements_whatever_the_number_of_documents(
    tmp_path: Path,
) -> None:
    small, large = store(tmp_path, "small.db"), store(tmp_path, "large.db")
    try:
        with small.begin() as conn:
            seed(conn, 2)
        with large.begin() as conn:
            seed(conn, 40)
        few, many = statements_of_a_read(small), statements_of_a_read(large)
        assert few == many
        # INS lookup, facts (with the last access), documents, extracts, personal space; the
        # access-log line.
        assert few == ["SELECT"] * 5 + ["INSERT"]
    finally:
        small.dispose()
        large.dispose()


def test_a_list_reads_the_filing_time_only_where_invisible_patient_needs_it(
    store_db: Engine,
) -> None:
    with store_db.begin() as conn:
        pid = seed(conn, 7)
        full = record_queries.document_rows(conn, pid)
        lean = record_queries.document_rows(conn, pid, lean=True)
    assert [r["document_id"] for r in full] == [f"1.2.250.9.{n}" for n in range(7)]
    assert len(lean) == len(full) == 7
    for whole, listed in zip(full, lean, strict=True):
        assert whole["stored_at"] is not None and whole["stored_at"].tzinfo is UTC
        expected = whole["stored_at"] if whole["invisible_patient"] else None
        assert listed == {**whole, "stored_at": expected}
        assert isinstance(whole["masked_ps"], bool) and whole["patient_masked"] is False


def test_the_patient_does_not_see_invisible_documents_in_a_list_nor_the_doctor_their_flag(
    store_db: Engine,
) -> None:
    """DOMAIN.md §6 (INVISIBLE_PATIENT until the announcement, at most a month): the lean list
    keeps stored_at for exactly those documents."""
    with store_db.begin() as conn:
        seed(conn, 6)
        patient = Actor(Role.PATIENT, INS)
        shown = record_access.document_list(conn, patient, INS, NOW)
        later = record_access.document_list(conn, patient, INS, NOW + timedelta(days=40))
        doctor = record_access.document_list(conn, DOCTOR, INS, NOW)
    hidden_now = {f"1.2.250.9.{n}" for n in (0, 3)}  # filed under a month before NOW
    assert {d["id"] for d in shown} == {f"1.2.250.9.{n}" for n in range(6)} - hidden_now
    assert len(later) == 6
    assert len(doctor) == 6 and all(d["flags"] == [] for d in doctor)  # not the author


def test_extracts_in_one_statement_come_newest_first_as_each_table_alone(
    store_db: Engine,
) -> None:
    with store_db.begin() as conn:
        pid = seed(conn, 9)
        both = record_queries.extracts(conn, pid, ("reimbursement", "vaccination"))
        reference: dict[str, list[dict[str, Any]]] = {}
        for kind, table, date in (
            ("reimbursement", reimbursements, reimbursements.c.date),
            ("vaccination", summary_entries, summary_entries.c.start),
        ):
            t = table.c
            columns = [c for c in t if c.name not in ("id", "patient_id")]
            query = select(*columns).where(t.patient_id == pid).order_by(date.desc(), t.id)
            reference[kind] = [dict(r._mapping) for r in conn.execute(query)]
        alone = record_queries.extracted(conn, pid, "vaccination")
    assert both == reference
    assert alone == reference["vaccination"]
    assert len(both["reimbursement"]) == 9


def test_the_last_professional_access_comes_with_the_facts(store_db: Engine) -> None:
    with store_db.begin() as conn:
        pid = seed(conn, 1)
        assert record_queries.facts(conn, pid, INS, NOW).last_professional_access is None
        record_access.record_view(conn, DOCTOR, INS, NOW)
        record_access.record_view(conn, Actor(Role.PATIENT, INS), INS, NOW + timedelta(hours=1))
        last = record_queries.facts(conn, pid, INS, NOW).last_professional_access
        view = record_access.record_view(conn, Actor(Role.PATIENT, INS), INS, NOW)
    assert last == {"at": NOW, "actor": "rpps:10000000001", "emergency": False}
    assert view["last_professional_access"] == last
    assert view["patient"]["birth_name"] == "" and set(view["patient"]) == {
        "birth_name",
        "used_name",
        "first_given_name",
        "given_names",
        "birth_date",
        "sex",
    }
