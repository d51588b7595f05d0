"""Identity scenarios end to end: MLLP in (python-hl7's client), the record store out, on
SQLite and PostgreSQL. Each rule of issue 3 has a scenario that fails if the rule breaks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from engine.cli.main import app
from engine.journal.lookups import stats
from tests.integration.identity_harness import (
    NIA_OID,
    NIR_OID,
    TEST_OID,
    IdentityEngine,
    adt,
    nir,
    oru,
    pid,
)

INS = nir("2790351215189")  # the ANS test patient, 279035121518989
TWIN_A, TWIN_B = nir("1850575123001"), nir("1850575123002")
TWIN = {"name": "MARTIN", "given": "LEA", "dob": "20180505", "sex": "F"}
T2 = "T2^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"


def twins(*then: str) -> tuple[str, ...]:
    """The registrations of twins T1 and T2 (same names and birth date), then ``then``."""
    return (
        adt("A28", pid("T1", TWIN_A, **TWIN), "1"),
        adt("A28", pid("T2", TWIN_B, **TWIN), "2"),
        *then,
    )


@pytest.fixture
def engine(store_url: str) -> Iterator[IdentityEngine]:
    running = IdentityEngine(store_url)
    yield running
    running.stop()


def test_admission_with_a_qualified_ins_then_results_file_under_that_patient(
    engine: IdentityEngine,
) -> None:
    assert engine.send(adt("A01", pid("IPP1", INS), "1"), oru(pid("IPP1", INS), "2")) == [
        "AA",
        "AA",
    ]
    patient = engine.patient("IPP1")
    assert (patient["ins"], patient["identity_status"]) == (INS, "VALI")
    assert engine.observations(patient["id"]) == ["4.2"]
    assert engine.states() == [("1", "delivered"), ("2", "delivered")]


def test_results_before_the_admission_are_held_then_filed_in_order_once_it_arrives(
    engine: IdentityEngine,
) -> None:
    engine.send(oru(pid("IPP1", INS), "1", "3.9"), oru(pid("IPP1"), "2", "4.4"))
    assert engine.states() == [("1", "held"), ("2", "held")]
    assert engine.rows("SELECT error_code FROM journal_messages") == [("902",), ("902",)]
    assert engine.rows("SELECT count(*) FROM store_patients") == [(0,)]
    with engine.engine.db.connect() as conn:
        [counts] = stats(conn)
    assert (counts.held, counts.in_flight, counts.dead_lettered) == (2, 0, 0)
    engine.send(adt("A28", pid("IPP1", INS), "3"))
    engine.wait_idle()
    assert engine.states() == [("1", "delivered"), ("2", "delivered"), ("3", "delivered")]
    patient = engine.patient("IPP1")
    assert engine.observations(patient["id"]) == ["3.9", "4.4"]  # original order
    assert engine.rows("SELECT count(*) FROM journal_holds") == [(0,)]


def test_an_ins_without_vali_is_left_out_and_the_patient_integrated_on_its_ipp(
    engine: IdentityEngine,
) -> None:
    engine.send(adt("A28", pid("IPP1", INS, status="PROV"), "1"))
    patient = engine.patient("IPP1")
    assert (patient["ins"], patient["identity_status"]) == ("", "PROV")
    assert engine.states() == [("1", "delivered")]


def test_a_trait_conflict_writes_nothing_and_waits_for_an_operator_who_attaches_it(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(adt("A28", pid("IPP1", INS), "1"))
    engine.send(oru(pid("", INS, dob="19790329"), "2"))
    assert engine.states()[1] == ("2", "review")
    patient = engine.patient("IPP1")
    assert engine.observations(patient["id"]) == []

    listed = engine.cli(monkeypatch, "conflicts", "--json")
    assert listed.exit_code == 0, listed.output
    [review] = json.loads(listed.stdout)
    assert (review["code"], review["candidates"]) == ("904", [patient["id"]])
    assert "birth_date" in review["reason"]
    shown = engine.cli(monkeypatch, "show", str(review["id"]))
    assert shown.exit_code == 0, shown.output
    assert "differing: birth_date" in shown.stdout
    assert "19790329" in shown.stdout and "19790328" in shown.stdout

    done = engine.cli(
        monkeypatch,
        "resolve",
        str(review["id"]),
        "--patient",
        str(patient["id"]),
        "--reason",
        "typo in the lab's birth date, checked by phone",
        "--operator",
        "iv-cell",
    )
    assert done.exit_code == 0, done.output
    engine.wait_idle()
    assert engine.states()[1] == ("2", "delivered")
    assert engine.observations(patient["id"]) == ["4.2"]
    assert engine.rows(
        "SELECT status, resolved_by, resolution_reason FROM store_identity_reviews"
    ) == [("attached", "iv-cell", "typo in the lab's birth date, checked by phone")]
    assert engine.rows("SELECT actor, code FROM journal_events WHERE stage = 'operator'") == [
        ("iv-cell", "identity_attached")
    ]
    assert engine.cli(monkeypatch, "conflicts", "--json").stdout.strip() == "[]"


def test_a_rejected_conflict_is_discarded_with_who_and_why(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(adt("A28", pid("IPP1", INS), "1"), oru(pid("", INS, sex="M"), "2"))
    [review] = json.loads(engine.cli(monkeypatch, "conflicts", "--json").stdout)
    result = engine.cli(
        monkeypatch, "resolve", str(review["id"]), "--reject", "--reason", "wrong patient"
    )
    assert result.exit_code == 0, result.output
    assert engine.states()[1] == ("2", "discarded")
    assert engine.rows("SELECT count(*) FROM store_observations") == [(0,)]


def test_twins_with_the_same_names_and_birth_date_stay_two_patients(
    engine: IdentityEngine,
) -> None:

    engine.send(*twins(oru(pid("", TWIN_B, **TWIN), "3", "9.9")))
    a, b = engine.patient("T1"), engine.patient("T2")
    assert a["id"] != b["id"]
    assert (a["ins"], b["ins"]) == (TWIN_A, TWIN_B)
    assert (engine.observations(a["id"]), engine.observations(b["id"])) == ([], ["9.9"])
    # A message naming one twin's IPP and the other's INS is a conflict, never a guess.
    engine.send(oru(pid("T1", TWIN_B, **TWIN), "4"))
    assert engine.states()[3] == ("4", "review")


def test_a40_merges_both_sides_data_and_an_operator_can_undo_it(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(
        adt("A28", pid("KEEP", INS), "1"),
        adt("A28", pid("GONE", status=""), "2"),
        oru(pid("KEEP", INS), "3", "1.1"),
        oru(pid("GONE", status=""), "4", "2.2"),
        adt("A40", pid("KEEP", INS), "5", mrg="GONE^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"),
    )
    assert engine.states()[4] == ("5", "delivered")
    survivor = engine.patient("KEEP")
    assert engine.observations(survivor["id"]) == ["1.1", "2.2"]
    assert engine.patient("GONE")["id"] == survivor["id"]  # the identifier moved with it
    [(absorbed_id, merged_into)] = engine.rows(
        "SELECT id, merged_into FROM store_patients WHERE merged_into IS NOT NULL"
    )
    assert merged_into == survivor["id"]
    engine.send(oru(pid("GONE", status=""), "6", "3.3"))  # the absorbed IPP still resolves
    assert engine.observations(survivor["id"]) == ["1.1", "2.2", "3.3"]

    [(merge_id,)] = engine.rows("SELECT id FROM store_merges")
    undone = engine.cli(monkeypatch, "unmerge", str(merge_id), "--reason", "wrong A40")
    assert undone.exit_code == 0, undone.output
    # The result filed through GONE's IPP after the merge goes back with GONE.
    assert "1 row(s) filed since the merge" in undone.stdout
    assert engine.observations(survivor["id"]) == ["1.1"]
    assert engine.observations(absorbed_id) == ["2.2", "3.3"]
    assert engine.patient("GONE")["id"] == absorbed_id
    assert engine.rows("SELECT undone_by, undo_reason FROM store_merges")[0][1] == "wrong A40"


GONE = "GONE^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"


def test_a40_of_a_qualified_duplicate_moves_its_ins_to_the_survivor(
    engine: IdentityEngine,
) -> None:
    # The usual duplicate: the qualified record is absorbed by the hospital's main record,
    # whose A40 PID already carries the INS.
    engine.send(
        adt("A28", pid("GONE", INS), "1"),
        adt("A28", pid("KEEP", status=""), "2"),
        adt("A40", pid("KEEP", INS), "3", mrg=GONE),
    )
    assert engine.states()[2] == ("3", "delivered")
    survivor = engine.patient("KEEP")
    assert (survivor["ins"], survivor["identity_status"]) == (INS, "VALI")
    engine.send(oru(pid("", INS), "4"))
    assert engine.observations(survivor["id"]) == ["4.2"]


def test_a40_whose_ins_traits_disagree_with_the_survivor_is_refused_for_review(
    engine: IdentityEngine,
) -> None:
    engine.send(
        adt("A28", pid("GONE", INS), "1"),
        adt("A28", pid("KEEP", name="MARTIN", given="PAUL", sex="M", status=""), "2"),
        adt("A40", pid("KEEP", name="MARTIN", given="PAUL", sex="M", status=""), "3", mrg=GONE),
    )
    assert engine.states()[2] == ("3", "review")
    assert engine.patient("GONE")["ins"] == INS
    assert engine.rows("SELECT count(*) FROM store_merges") == [(0,)]


def test_a40_of_two_patients_holding_the_same_visit_is_refused_for_review(
    engine: IdentityEngine,
) -> None:
    visit = "PV1|1|I|||||||||||||||||V9^^^CHU-X^VN"
    engine.send(
        adt("A01", pid("GONE", status=""), "1").rsplit("\r", 1)[0] + "\r" + visit,
        adt("A01", pid("KEEP", status=""), "2").rsplit("\r", 1)[0] + "\r" + visit,
        adt("A40", pid("KEEP", status=""), "3", mrg=GONE),
    )
    assert engine.states()[2] == ("3", "review")
    reason = engine.rows("SELECT error_reason FROM journal_messages WHERE control_id = '3'")
    assert reason == [("A40: both patients hold the same visit number",)]


def test_a40_in_review_can_be_rejected_but_not_attached_to_one_patient(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(*twins(adt("A40", pid("T1", TWIN_A, **TWIN), "3", mrg=T2)))
    [review] = json.loads(engine.cli(monkeypatch, "conflicts", "--json").stdout)
    first = str(engine.patient("T1")["id"])
    attach = ["resolve", str(review["id"]), "--patient", first, "--reason", "same child"]
    refused = engine.cli(monkeypatch, *attach)
    assert refused.exit_code == 1
    assert "can only be rejected" in refused.stderr
    no_reason = engine.cli(monkeypatch, "resolve", str(review["id"]), "--reject", "--reason", " ")
    assert no_reason.exit_code == 2
    rejected = ["resolve", str(review["id"]), "--reject", "--reason", "twins, not a duplicate"]
    assert engine.cli(monkeypatch, *rejected).exit_code == 0
    assert engine.states()[2] == ("3", "discarded")


def test_a40_between_two_patients_with_different_ins_is_refused_for_review(
    engine: IdentityEngine,
) -> None:
    engine.send(*twins(adt("A40", pid("T1", TWIN_A, **TWIN), "3", mrg=T2)))
    assert engine.states()[2] == ("3", "review")
    assert engine.rows("SELECT count(*) FROM store_patients WHERE merged_into IS NOT NULL") == [
        (0,)
    ]


def test_a47_with_an_emptied_ins_slot_demotes_the_identity(engine: IdentityEngine) -> None:
    engine.send(adt("A28", pid("IPP1", INS), "1"))
    emptied = pid(
        "IPP1", status="PROV", more_ids=('""^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS',)
    )
    engine.send(
        adt("A47", emptied, "2", mrg=f"{INS}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS")
    )
    assert engine.states()[1] == ("2", "delivered")
    patient = engine.patient("IPP1")
    assert (patient["ins"], patient["identity_status"]) == ("", "PROV")
    events = engine.rows("SELECT event FROM store_identity_events ORDER BY id")
    assert events[-1] == ("ins_removed",)


def test_a31_with_the_nia_and_the_nir_replaces_the_nia_by_the_nir(
    engine: IdentityEngine,
) -> None:
    nia, real_nir = nir("1790399123456"), nir("1790375123456")
    engine.send(adt("A28", pid("IPP1", nia, NIA_OID, name="DOE", given="JOHN", sex="M"), "1"))
    assert engine.patient("IPP1")["ins_oid"] == NIA_OID
    both = pid(
        "IPP1",
        nia,
        NIA_OID,
        name="DOE",
        given="JOHN",
        sex="M",
        more_ids=(f"{real_nir}^^^ASIP-SANTE-INS-NIR&{NIR_OID}&ISO^INS",),
    )
    engine.send(adt("A31", both, "2"))
    patient = engine.patient("IPP1")
    assert (patient["ins"], patient["ins_oid"]) == (real_nir, NIR_OID)
    assert engine.rows("SELECT event FROM store_identity_events ORDER BY id")[-1] == (
        "ins_replaced",
    )


def test_the_production_profile_refuses_a_test_ins(tmp_path: Path) -> None:
    production = IdentityEngine(f"sqlite:///{tmp_path / 'prod.db'}", accept_test_ins=False)
    try:
        production.send(adt("A28", pid("IPP1", INS), "1"))
        assert production.rows("SELECT state, error_code FROM journal_messages") == [
            ("dead_lettered", "ins_refused")
        ]
        assert production.rows("SELECT count(*) FROM store_patients") == [(0,)]
    finally:
        production.stop()


def test_an_ins_without_its_traits_waits_for_review_as_905(engine: IdentityEngine) -> None:
    engine.send(adt("A28", pid("IPP1", INS, sex=""), "1"))
    assert engine.rows("SELECT state, error_code FROM journal_messages") == [("review", "905")]
    assert engine.rows("SELECT code FROM store_identity_reviews") == [("905",)]
    assert engine.rows("SELECT count(*) FROM store_patients") == [(0,)]


def test_a_channel_that_requires_the_ins_sends_messages_without_one_to_review_as_903(
    tmp_path: Path,
) -> None:
    dmp = IdentityEngine(f"sqlite:///{tmp_path / 'dmp.db'}", require_ins=True)
    try:
        dmp.send(
            adt("A28", pid("IPP1", INS, status="PROV"), "1"), adt("A28", pid("IPP2", INS), "2")
        )
        assert dmp.rows("SELECT state, error_code FROM journal_messages ORDER BY id") == [
            ("review", "903"),
            ("delivered", None),
        ]
    finally:
        dmp.stop()


def test_the_log_says_why_an_ins_was_not_used_without_naming_the_patient(
    engine: IdentityEngine,
) -> None:
    with structlog.testing.capture_logs() as events:
        engine.send(adt("A28", pid("IPP1", INS, status="PROV"), "1"))
    [event] = [e for e in events if e["event"] == "ins_not_used"]
    assert "VALI" in event["reason"]
    text = json.dumps(events)
    assert INS not in text and "PAT-TROIS" not in text and "IPP1" not in text


def test_a_held_result_whose_patient_will_never_come_can_be_discarded(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(oru(pid("NOBODY"), "1"))
    [(message_id,)] = engine.rows("SELECT id FROM journal_messages")
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", engine.url)
    result = CliRunner().invoke(
        app, ["dlq", "discard", str(message_id), "--reason", "lab test patient"]
    )
    assert result.exit_code == 0, result.output
    assert engine.states() == [("1", "discarded")]
    assert engine.rows("SELECT count(*) FROM journal_holds") == [(0,)]
    engine.send(adt("A28", pid("NOBODY"), "2"))  # a later registration releases nothing
    assert engine.states() == [("1", "discarded"), ("2", "delivered")]


NEW_INS = nir("2790351215190")


def test_a47_with_a_new_qualified_ins_replaces_the_old_and_records_both(
    engine: IdentityEngine,
) -> None:
    old = f"{INS}^^^ASIP-SANTE-INS-NIR&{TEST_OID}&ISO^INS"
    engine.send(adt("A28", pid("IPP1", INS), "1"), adt("A47", pid("IPP1", NEW_INS), "2", mrg=old))
    assert engine.states()[1] == ("2", "delivered")
    assert engine.patient("IPP1")["ins"] == NEW_INS
    [(detail,)] = engine.rows(
        "SELECT detail FROM store_identity_events WHERE event = 'ins_replaced'"
    )
    assert json.loads(str(detail))["before"]["ins"] == INS


def test_an_a47_before_its_patient_is_held_then_applied_once_the_patient_is_known(
    engine: IdentityEngine,
) -> None:
    engine.send(adt("A47", pid("NEW1"), "1", mrg="OLD1^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"))
    assert engine.states() == [("1", "held")]
    engine.send(adt("A28", pid("OLD1"), "2"))
    assert engine.states() == [("1", "delivered"), ("2", "delivered")]
    # The A47 replaced OLD1 by NEW1 on the patient the A28 created.
    assert engine.rows("SELECT patient_id, value FROM store_patient_identifiers") == [
        (engine.patient("NEW1")["id"], "NEW1")
    ]


def test_an_a47_giving_the_patient_another_patients_ipp_goes_to_review(
    engine: IdentityEngine,
) -> None:
    engine.send(
        adt("A28", pid("IPP1", status=""), "1"),
        adt("A28", pid("IPP2", name="DUPONT", status=""), "2"),
        adt("A47", pid("IPP2", status=""), "3", mrg="IPP1^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"),
    )
    assert engine.states()[2] == ("3", "review")
    assert engine.patient("IPP1")["id"] != engine.patient("IPP2")["id"]


def test_an_attached_adt_updates_the_patient_but_not_its_qualified_traits(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(adt("A28", pid("IPP1", INS), "1"))
    engine.send(adt("A01", pid("IPP1", INS, dob="19790329"), "2"))
    assert engine.states()[1] == ("2", "review")
    [review] = json.loads(engine.cli(monkeypatch, "conflicts", "--json").stdout)
    patient = engine.patient("IPP1")
    why = "admission is right, the birth date typo is fixed at the source"
    done = engine.attach(monkeypatch, review["id"], patient["id"], why)
    assert done.exit_code == 0, done.output
    engine.wait_idle()
    assert engine.states()[1] == ("2", "delivered")
    assert engine.rows("SELECT birth_date FROM store_patients") == [("19790328",)]
    assert engine.rows("SELECT visit_number FROM store_encounters") == [("V2",)]
