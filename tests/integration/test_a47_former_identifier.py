"""A47 (PAM-FR shape: PID-3 the new identifier, MRG-1 the former one, same assigning authority)
replaces the former identifier: over MLLP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.identity_harness import IdentityEngine, adt, oru, pid

OLD = "OLD1^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"


@pytest.fixture
def engine(store_url: str) -> Iterator[IdentityEngine]:
    running = IdentityEngine(store_url)
    yield running
    running.stop()


def test_after_an_a47_a_result_naming_only_the_former_identifier_is_held_as_unknown(
    engine: IdentityEngine,
) -> None:
    engine.send(
        adt("A28", pid("OLD1", status=""), "1"),
        adt("A47", pid("NEW1", status=""), "2", mrg=OLD),
        oru(pid("OLD1", status=""), "3", "5.1"),
        oru(pid("NEW1", status=""), "4", "5.2"),
    )
    assert engine.states() == [
        ("1", "delivered"),
        ("2", "delivered"),
        ("3", "held"),
        ("4", "delivered"),
    ]
    assert engine.rows("SELECT error_code FROM journal_messages WHERE control_id = '3'") == [
        ("902",)
    ]
    patient = engine.patient("NEW1")
    assert engine.observations(patient["id"]) == ["5.2"]
    assert engine.rows("SELECT value FROM store_patient_identifiers") == [("NEW1",)]


def test_the_identity_history_keeps_the_former_identifier_of_an_a47(
    engine: IdentityEngine,
) -> None:
    engine.send(
        adt("A28", pid("OLD1", status=""), "1"),
        adt("A47", pid("NEW1", status=""), "2", mrg=OLD),
    )
    [(detail, message)] = engine.rows(
        "SELECT detail, m.control_id FROM store_identity_events e "
        "JOIN journal_messages m ON m.id = e.message_id WHERE event = 'identifiers_replaced'"
    )
    change = json.loads(str(detail))
    assert message == "2"
    assert change["removed"] == [
        {
            "value": "OLD1",
            "authority": "CHU-X",
            "authority_oid": "1.2.250.1.71.4.2.2",
            "type_code": "PI",
        }
    ]
    assert [a["value"] for a in change["added"]] == ["NEW1"]


def test_an_a47_repeating_the_identifier_in_pid_keeps_it(engine: IdentityEngine) -> None:
    # MRG-1 names the IPP and PID-3 repeats it (an INS-only change): the IPP stays.
    engine.send(
        adt("A28", pid("IPP1", status=""), "1"),
        adt(
            "A47",
            pid("IPP1", status="", more_ids=("IPP9^^^LAB^PI",)),
            "2",
            mrg=OLD.replace("OLD1", "IPP1"),
        ),
        oru(pid("IPP1", status=""), "3"),
    )
    assert engine.states()[2] == ("3", "delivered")
    assert sorted(engine.rows("SELECT value FROM store_patient_identifiers")) == [
        ("IPP1",),
        ("IPP9",),
    ]
