"""The ownership rule in the record store itself, on SQLite and PostgreSQL (``store_db``): each
version records its filer; only the filer, or its ownership group, may replace or delete it;
a version filed before identities were recorded may be changed by anyone."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text, update

from engine.adapters.record_store import RecordStore
from engine.cda.standalone import read_standalone
from engine.db import make_engine
from engine.errors import NotDocumentOwner
from engine.hl7v2.reader import Message
from engine.identity.rules import IdentityPolicy
from engine.migrate import upgrade
from engine.pipeline.delivery import Delivery
from engine.store.cda_filing import _LATER_VERSIONS
from engine.store.documents import documents
from engine.store.ownership import OwnerGroups
from engine.transforms.map_hl7 import map_message
from tests.integration.identity_harness import adt, pid
from tests.integration.test_documents_alone import replacement
from tests.record_filing import apply_operation, file_delivery
from tests.sample_files import CDA_SAMPLES

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TSH = CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
TSH_ID = "1.2.250.1.213.1.1.1.55.2024.9.1"
PATIENT = pid("IPP1", "279035121518989")
STORE = RecordStore(
    policy=IdentityPolicy(accept_test_ins=True),
    owners=OwnerGroups({"lab": ("token:lab-a", "token:lab-b")}),
)


def file(db: Engine, raw: bytes, sender: str, message_id: int) -> None:
    """One CDA received alone, filed by ``sender`` in a transaction of its own."""
    with db.begin() as conn:
        payload = read_standalone(raw)
        file_delivery(STORE, Delivery(conn, message_id, "docs", payload, raw, NOW, sender=sender))


def deletion(db: Engine, sender: str, message_id: int) -> None:
    """An MDM^T04 naming the TSH report, from ``sender``."""
    data = base64.b64encode(TSH.read_bytes()).decode()
    msg = "\r".join(
        [
            "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||MDM^T04^MDM_T02|9|P|2.5",
            PATIENT,
            f"TXA|1|11502-2|TEXT|20240306111154||||||||{TSH_ID}",
            f"OBX|1|ED|11502-2^CR^LN||^text^XML^Base64^{data}||||||F",
        ]
    )
    with db.begin() as conn:
        file_delivery(
            STORE, Delivery(conn, message_id, "mdm", Message(msg), msg.encode(), NOW, sender=sender)
        )


def third_version() -> bytes:
    """Version 3 of the TSH report, replacing version 2 (``9.9.2``)."""
    second = replacement(TSH.read_bytes())
    third = second.replace(
        b'<parentDocument><id root="1.2.250.1.213.1.1.1.55.2024.9.1"/>',
        b'<parentDocument><id root="9.9.2"/>',
    )
    third = third.replace(b'<id root="9.9.2"/>', b'<id root="9.9.3"/>', 1)
    return third.replace(b'<versionNumber value="2"/>', b'<versionNumber value="3"/>')


def stored(db: Engine) -> list[tuple[object, ...]]:
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT document_id, status, filed_by FROM store_documents ORDER BY id")
        )
        return [tuple(r) for r in rows]


@pytest.fixture
def db(store_db: Engine) -> Engine:
    with store_db.begin() as conn:
        apply_operation(STORE, conn, 1, map_message(Message(adt("A28", PATIENT, "1"))), NOW)
    return store_db


def test_each_version_records_the_identity_that_filed_it(db: Engine) -> None:
    file(db, TSH.read_bytes(), "cert:lab.example.fr", 2)
    assert stored(db) == [(TSH_ID, "current", "cert:lab.example.fr")]


def test_another_identity_may_not_replace_a_document_and_nothing_is_written(db: Engine) -> None:
    file(db, TSH.read_bytes(), "token:lab-a", 2)
    with pytest.raises(NotDocumentOwner) as refused:
        file(db, replacement(TSH.read_bytes()), "token:intruder", 3)
    assert refused.value.code == "not_document_owner"
    assert refused.value.ack_code == "AR"
    assert stored(db) == [(TSH_ID, "current", "token:lab-a")]


def test_another_identity_may_not_delete_a_document(db: Engine) -> None:
    file(db, TSH.read_bytes(), "token:lab-a", 2)
    with pytest.raises(NotDocumentOwner):
        deletion(db, "mdm:EVIL^ELSEWHERE", 3)
    assert stored(db) == [(TSH_ID, "current", "token:lab-a")]


def test_the_filer_and_its_group_may_replace_and_delete(db: Engine) -> None:
    file(db, TSH.read_bytes(), "token:lab-a", 2)
    file(db, replacement(TSH.read_bytes()), "token:lab-b", 3)  # same group
    assert stored(db) == [
        (TSH_ID, "superseded", "token:lab-a"),
        ("9.9.2", "current", "token:lab-b"),
    ]
    deletion(db, "token:lab-a", 4)
    assert stored(db)[0] == (TSH_ID, "deleted", "token:lab-a")


def test_a_version_filed_before_identities_were_recorded_may_be_replaced_by_anyone(
    db: Engine,
) -> None:
    file(db, TSH.read_bytes(), "token:lab-a", 2)
    with db.begin() as conn:  # as migration 0007 left the rows filed before it
        conn.execute(update(documents).values(filed_by=""))
    file(db, replacement(TSH.read_bytes()), "token:newcomer", 3)
    assert stored(db) == [(TSH_ID, "superseded", ""), ("9.9.2", "current", "token:newcomer")]
    with pytest.raises(NotDocumentOwner):  # the replacement's filer owns it from now on
        file(db, third_version(), "token:lab-a", 4)


def test_an_identical_copy_from_anyone_changes_nothing_and_is_not_refused(db: Engine) -> None:
    file(db, TSH.read_bytes(), "token:lab-a", 2)
    file(db, TSH.read_bytes(), "token:someone-else", 3)  # a resend: applied once
    assert stored(db) == [(TSH_ID, "current", "token:lab-a")]


@pytest.mark.parametrize(
    ("later", "later_id", "later_filer", "original_status"),
    [
        pytest.param(replacement, "9.9.2", "token:intruder", "current", id="replaced-by-another"),
        pytest.param(replacement, "9.9.2", "token:lab-b", "superseded", id="replaced-by-its-group"),
        # Version 3 of the set replaces 9.9.2, not the original: found through its set.
        pytest.param(lambda _: third_version(), "9.9.3", "token:lab-a", "superseded", id="set"),
    ],
)
def test_a_late_original_is_superseded_only_by_a_later_version_its_filer_may_replace_it_with(
    db: Engine,
    later: Callable[[bytes], bytes],
    later_id: str,
    later_filer: str,
    original_status: str,
) -> None:
    file(db, later(TSH.read_bytes()), later_filer, 2)
    file(db, TSH.read_bytes(), "token:lab-a", 3)
    assert stored(db) == [
        (later_id, "current", later_filer),
        (TSH_ID, original_status, "token:lab-a"),
    ]


def test_a_later_version_in_another_patients_record_does_not_supersede_a_late_original(
    db: Engine,
) -> None:
    with db.begin() as conn:
        apply_operation(
            STORE, conn, 5, map_message(Message(adt("A28", pid("IPP2", name="AUTRE"), "5"))), NOW
        )
    file(db, replacement(TSH.read_bytes()), "token:lab-a", 2)
    with db.begin() as conn:  # as if the replacement had been filed for the other patient
        other = conn.execute(text("SELECT max(id) FROM store_patients")).scalar()
        conn.execute(
            update(documents).where(documents.c.document_id == "9.9.2").values(patient_id=other)
        )
    file(db, TSH.read_bytes(), "token:lab-a", 3)
    assert stored(db)[1] == (TSH_ID, "current", "token:lab-a")


def test_the_later_versions_of_a_document_are_found_by_index_not_by_patient(
    tmp_path: Path,
) -> None:
    """Filing reads the versions after a document through their own indexes (migration 0019):
    through the patient's, a patient's thousandth document read the 999 before it."""
    db = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    upgrade(db)
    with db.connect() as conn:
        sql = _LATER_VERSIONS._compiled(conn.dialect).sql
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("a", "s", 1))
        )
    db.dispose()
    assert "USING INDEX ix_store_documents_replaces" in plan
    assert "USING INDEX ix_store_documents_set_id_version" in plan
    assert "SCAN" not in plan
