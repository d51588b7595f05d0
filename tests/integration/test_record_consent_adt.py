"""Consent and death from a facility's ADT (DOMAIN.md §2 ZFA, §6 consent and retention):
the ZFA segment of the ANS samples and PID-30 / an A03 with a death date, read by
``engine.transforms.map_consent.record_consent`` and applied by
``engine.store.consent.apply_consent`` to a patient filed over MLLP; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from engine.hl7v2.reader import Message
from engine.record.model import State
from engine.store import consent
from engine.store.record_queries import patient_id
from engine.transforms.map_consent import record_consent
from tests.integration.identity_harness import adt, pid
from tests.integration.record_harness import INS, TSH, RecordWorld, mdm
from tests.sample_files import SAMPLES

NOW = datetime(2024, 3, 6, 12, tzinfo=UTC)


@pytest.fixture
def world(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordWorld]:
    running = RecordWorld(store_url, monkeypatch)
    assert running.engine.send(adt("A28", pid("IPP1", INS), "1")) == ["AA"]
    yield running
    running.stop()


def sample(name: str) -> Message:
    return Message((SAMPLES / "fr-ans" / name).read_text("utf-8"))


def apply(world: RecordWorld, message: Message) -> State:
    with world.engine.engine.db.begin() as conn:
        pid_ = patient_id(conn, INS)
        assert pid_ is not None
        said = record_consent(message)
        if said is not None:
            consent.apply_consent(conn, pid_, said, "mllp:hospital:GAM^CHU-X", NOW)
        return consent.state(conn, pid_)


def test_an_adt_whose_zfa_records_the_consent_opens_the_record(world: RecordWorld) -> None:
    """DOMAIN.md line 59-60 (ZFA: DMP status and the patient's consent / opposition) and line
    114 (consent): consent_1 (ZFA-9 INO, ZFA-11 IC) opens the record; consent_2 (IO, INC) and
    consent_3 (NA) do not open one."""
    doctor = world.professional("10000000001")  # no visit here: not of the care team
    assert apply(world, sample("adt_a01_consent_2.hl7")) is State.NONE
    assert apply(world, sample("adt_a01_consent_3.hl7")) is State.NONE
    assert world.get(doctor).json() == {"reason": "not_found"}  # no record yet
    assert apply(world, sample("adt_a01_consent_1.hl7")) is State.OPEN
    assert world.get(doctor).json() == {"reason": "not_authorised"}  # a record, not theirs


@pytest.mark.parametrize(
    "text",
    [
        "PID|1||IPP1^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F" + "|" * 22 + "Y",
        "PID|1||IPP1^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F" + "|" * 21 + "20240305",
    ],
    ids=["pid30", "a03-death-date"],
)
def test_death_closes_the_record_and_it_takes_no_new_document(
    world: RecordWorld, text: str
) -> None:
    """DOMAIN.md line 131 (retention after closure or death): PID-30 = Y, or an A03 with a
    death date (PID-29), closes the record; a new document is dead-lettered record_closed;
    the patient's consent cannot reopen it."""
    patient = world.patient()
    assert world.post(patient, "consent").status_code == 204
    trigger = "A08" if text.endswith("Y") else "A03"
    message = Message(f"MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306||ADT^{trigger}|7|P|2.5\r{text}")
    assert apply(world, message) is State.CLOSED
    world.engine.send(mdm(TSH, "30"))
    assert world.engine.rows("SELECT error_code FROM journal_messages WHERE control_id = '30'") == [
        ("record_closed",)
    ]
    assert world.post(patient, "reopen").json() == {"reason": "record_closed"}


def test_a_consent_adt_over_mllp_opens_the_record(world: RecordWorld) -> None:
    """DOMAIN.md line 59-60 and 114, end to end: the ANS sample consent_1 sent over MLLP."""
    text = (SAMPLES / "fr-ans" / "adt_a01_consent_1.hl7").read_text("utf-8")
    doctor = world.professional("10000000001")
    assert world.engine.send(text) == ["AA"]
    assert world.get(doctor).status_code == 200  # open, and CHU-X's visit: the care team
