"""The shared record's access rules, pure (engine.record.rules; DOMAIN.md §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.record.model import Actor, DocumentFacts, RecordFacts, Role, State
from engine.record.rules import decide, emergency_allowed, one_month_after, rpps_of, visible

NOW = datetime(2024, 3, 6, 12, tzinfo=UTC)
MT, AUTHOR, TEAM, OTHER = "10000000001", "10000000002", "10000000003", "10000000004"
FACTS = RecordFacts(
    1, "279035121518989", State.OPEN, medecin_traitant=MT, care_facilities=frozenset({"CHU-X"})
)
PATIENT = Actor(Role.PATIENT, FACTS.ins)
PARENT = Actor(Role.REPRESENTATIVE, FACTS.ins, "Parent")


def pro(rpps: str, facility: str = "") -> Actor:
    return Actor(Role.PROFESSIONAL, rpps, facility=facility)


def doc(**flags: object) -> DocumentFacts:
    values: dict[str, object] = {
        "author_id": f"1.2.250.1.71.4.2.1^8{AUTHOR}",
        "masked_ps": False,
        "invisible_patient": False,
        "invisible_legal_reps": False,
        "stored_at": NOW,
        **flags,
    }
    return DocumentFacts(**values)  # type: ignore[arg-type]


def test_the_national_professional_id_8_plus_rpps_is_the_rpps() -> None:
    """CDA authors and CPS certificates carry ``8`` + RPPS (the samples' 801234534765)."""
    assert rpps_of("1.2.250.1.71.4.2.1^801234534765") == "01234534765"
    assert rpps_of("10000000001") == "10000000001"


def test_invisible_patient_lifts_itself_one_month_after_filing() -> None:
    """DOMAIN.md line 118-119 (it becomes visible after one month, R1111-53)."""
    hidden = doc(invisible_patient=True)
    assert not visible(PATIENT, FACTS, hidden, NOW + timedelta(days=28))
    assert visible(PATIENT, FACTS, hidden, one_month_after(NOW))
    assert visible(PATIENT, FACTS, doc(invisible_patient=True, revealed_at=NOW), NOW)
    assert one_month_after(datetime(2024, 1, 31, tzinfo=UTC)) == datetime(2024, 2, 29, tzinfo=UTC)
    assert one_month_after(datetime(2024, 12, 15, tzinfo=UTC)) == datetime(2025, 1, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("flags", "patient", "parent", "author", "mt", "team"),
    [
        ({}, True, True, True, True, True),
        ({"masked_ps": True}, True, True, True, False, False),
        ({"invisible_patient": True}, False, False, True, True, True),
        ({"invisible_legal_reps": True}, True, False, True, True, True),
        ({"patient_masked": True}, True, True, True, True, False),
    ],
)
def test_who_sees_a_document_under_each_mask(
    flags: dict[str, bool], patient: bool, parent: bool, author: bool, mt: bool, team: bool
) -> None:
    """DOMAIN.md lines 69-70, 90-91, 118-124: MASQUE_PS (the author only among
    professionals), INVISIBLE_PATIENT, INVISIBLE_REP_LEGAUX, the patient's own mask (still seen
    by the author and the médecin traitant)."""
    d = doc(**flags)
    seen = [
        visible(a, FACTS, d, NOW)
        for a in (PATIENT, PARENT, pro(AUTHOR), pro(MT), pro(TEAM, "CHU-X"))
    ]
    assert seen == [patient, parent, author, mt, team]


def test_access_order_closed_then_blocked_then_mt_authorised_care_team_emergency() -> None:
    """DOMAIN.md line 114-117: the care team presumed, others authorised or in emergency;
    a block wins over everything but a closed record."""
    assert decide(pro(TEAM, "CHU-X"), FACTS, NOW).basis == "care_team"
    assert decide(pro(OTHER), FACTS, NOW).reason == "not_authorised"
    blocked = RecordFacts(**{**_fields(FACTS), "blocked": frozenset({MT})})
    assert decide(pro(MT), blocked, NOW).reason == "blocked_by_patient"
    closed = RecordFacts(**{**_fields(FACTS), "state": State.CLOSED})
    assert decide(pro(MT), closed, NOW).reason == "record_closed"
    assert decide(PATIENT, closed, NOW).allowed
    none = RecordFacts(**{**_fields(FACTS), "state": State.NONE})
    assert decide(pro(MT), none, NOW).reason == "not_found"
    urgent = RecordFacts(**{**_fields(FACTS), "emergency": {OTHER: NOW + timedelta(hours=1)}})
    assert decide(pro(OTHER), urgent, NOW).emergency
    assert not decide(pro(OTHER), urgent, NOW + timedelta(hours=2)).allowed
    opposed = RecordFacts(**{**_fields(FACTS), "emergency_opposed": True})
    assert emergency_allowed(pro(OTHER), opposed).reason == "emergency_opposed"
    assert emergency_allowed(PATIENT, FACTS).reason == "not_authorised"


def _fields(facts: RecordFacts) -> dict[str, object]:
    return {name: getattr(facts, name) for name in RecordFacts.__slots__}
