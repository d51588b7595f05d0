"""What an ADT says of the patient's record, read by the transform stage
(``engine.transforms.map_consent``; DOMAIN.md §2 ZFA, §6 consent): the ANS samples' ZFA
segments, PID-30, an A03's death date; ``map_message`` carries it on ADT operations only."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.hl7v2.reader import Message
from engine.transforms.map_consent import RecordConsent, record_consent
from engine.transforms.map_hl7 import map_message
from tests.sample_files import SAMPLES

#: HL7 times without an offset are French local time.
PARIS = ZoneInfo("Europe/Paris")
PID = "PID|1||IPP1^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F"


def adt(trigger: str, *segments: str) -> Message:
    msh = f"MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306||ADT^{trigger}|7|P|2.5"
    return Message("\r".join((msh, *segments)))


def sample(name: str) -> Message:
    return Message((SAMPLES / "fr-ans" / name).read_text("utf-8"))


def test_the_ans_consent_samples() -> None:
    """consent_1 (ZFA-9 INO, ZFA-11 IC) consents; consent_2 (IO, INC) and consent_3 (NA) do
    not; none of them closes the record or says anything of emergency access."""
    assert record_consent(sample("adt_a01_consent_1.hl7")) == RecordConsent(consents=True)
    assert record_consent(sample("adt_a01_consent_2.hl7")) == RecordConsent()
    assert record_consent(sample("adt_a01_consent_3.hl7")) == RecordConsent()


@pytest.mark.parametrize(
    ("zfa", "expected"),
    [
        ("ZFA|FERME", RecordConsent(closes=True)),
        ("ZFA|ferme", RecordConsent(closes=True)),
        ("ZFA|ACTIF||||||||||IC", RecordConsent(consents=True)),
        ("ZFA|ACTIF|||||Y", RecordConsent(emergency_opposed=True)),
        ("ZFA|ACTIF|||||N", RecordConsent(emergency_opposed=False)),
        ("ZFA|ACTIF|||||X", RecordConsent()),
    ],
)
def test_zfa_fields(zfa: str, expected: RecordConsent) -> None:
    assert record_consent(adt("A08", PID, zfa)) == expected


def test_death_is_pid30_or_an_a03_with_a_death_date() -> None:
    """A death says nothing else (the ZFA that follows is not read): the record closes."""
    assert record_consent(adt("A08", PID + "|" * 22 + "Y", "ZFA|ACTIF||||||||INO")) == (
        RecordConsent(died=True)
    )
    died = record_consent(adt("A03", PID + "|" * 21 + "20240305"))
    assert died == RecordConsent(died=True, died_at=datetime(2024, 3, 5, tzinfo=PARIS))
    # A death date outside an A03, without PID-30, is not a death to act on.
    assert record_consent(adt("A08", PID + "|" * 21 + "20240305")) is None


def test_an_adt_without_zfa_or_death_says_nothing() -> None:
    assert record_consent(adt("A08", PID)) is None


def test_map_message_carries_it_on_adt_operations_only() -> None:
    assert map_message(sample("adt_a01_consent_1.hl7")).consent == RecordConsent(consents=True)
    assert map_message(adt("A08", PID)).consent is None
    oru = Message(
        "MSH|^~\\&|LAB|CHU-X|DPI|CHU-X|20240306||ORU^R01|8|P|2.5\r"
        + PID
        + "\rOBR|1\rOBX|1|NM|2345-7^GLU^LN||5.1|mmol/L"
    )
    assert map_message(oru).consent is None
