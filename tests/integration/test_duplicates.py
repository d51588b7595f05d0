"""Probable duplicates and homonym notices for the identity cell: patients registered over
MLLP, the cell's commands through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog
from sqlalchemy import text

from engine.db import make_engine
from engine.migrate import upgrade
from engine.store.identity_duplicates import PROVISIONAL_MATCHES_QUALIFIED, SAME_TRAITS
from tests.integration.identity_harness import IdentityEngine, adt, nir, pid

INS = nir("2790351215189")
TWIN_A, TWIN_B = nir("1850575123001"), nir("1850575123002")
TWIN = {"name": "MARTIN", "given": "LEA", "dob": "20180505", "sex": "F"}


@pytest.fixture
def engine(store_url: str) -> Iterator[IdentityEngine]:
    running = IdentityEngine(store_url)
    yield running
    running.stop()


def listed(engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    result = engine.cli(monkeypatch, "duplicates", "--json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def test_a_provisional_record_matching_a_qualified_one_is_proposed_with_score_and_reasons(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(
        adt("A28", pid("IPP1", INS, name="PAT-TROIS"), "1"),
        # Same person registered again without INS, name typed with accents and lower case.
        adt("A28", pid("IPP2", name="pat-trôis", given="Dominique", status="PROV"), "2"),
        adt("A28", pid("IPP3", name="DUPONT", status=""), "3"),
    )
    [pair] = listed(engine, monkeypatch)
    first, second = engine.patient("IPP1")["id"], engine.patient("IPP2")["id"]
    assert (pair["patient_a"], pair["patient_b"]) == (first, second)
    assert pair["reasons"][:2] == [SAME_TRAITS, PROVISIONAL_MATCHES_QUALIFIED]
    assert pair["score"] == 90  # same traits, provisional vs qualified, same given names


def test_twins_with_two_qualified_ins_are_never_proposed(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(
        adt("A28", pid("T1", TWIN_A, **TWIN), "1"),
        adt("A28", pid("T2", TWIN_B, **TWIN), "2"),
    )
    assert listed(engine, monkeypatch) == []


def test_a_dismissed_pair_is_not_proposed_again_and_keeps_who_and_why(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(
        adt("A28", pid("IPP1", status=""), "1"),
        adt("A28", pid("IPP2", status=""), "2"),
    )
    [pair] = listed(engine, monkeypatch)
    args = ["duplicates", "dismiss", str(pair["patient_b"]), str(pair["patient_a"])]
    done = engine.cli(monkeypatch, *args, "--reason", "namesakes", "--operator", "cell")
    assert done.exit_code == 0, done.output
    assert listed(engine, monkeypatch) == []
    assert engine.rows(
        "SELECT patient_a, patient_b, actor, reason FROM store_duplicate_dismissals"
    ) == [(pair["patient_a"], pair["patient_b"], "cell", "namesakes")]
    again = engine.cli(monkeypatch, *args, "--reason", "namesakes")
    assert again.exit_code == 1
    assert "already dismissed" in again.stderr


def test_a_merged_record_is_not_proposed(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(
        adt("A28", pid("KEEP", INS), "1"),
        adt("A28", pid("GONE", status=""), "2"),
        adt("A40", pid("KEEP", INS), "3", mrg="GONE^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"),
    )
    assert listed(engine, monkeypatch) == []


def test_a_new_homonym_is_a_notice_in_the_log_and_the_queue_that_blocks_nothing(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with structlog.testing.capture_logs() as logs:
        engine.send(
            adt("A28", pid("T1", TWIN_A, **TWIN), "1"),
            adt("A28", pid("T2", TWIN_B, **TWIN), "2"),
        )
    assert engine.states() == [("1", "delivered"), ("2", "delivered")]
    first, second = engine.patient("T1")["id"], engine.patient("T2")["id"]
    [line] = [e for e in logs if e["event"] == "identity_homonym"]
    assert (line["patient_id"], line["homonyms"]) == (second, [first])
    assert set(line) <= {"event", "log_level", "message_id", "patient_id", "homonyms"}
    assert json.loads(engine.cli(monkeypatch, "conflicts", "--json").stdout) == []
    shown = engine.cli(monkeypatch, "conflicts")
    assert "1 notice(s) for the identity cell" in shown.stdout
    [notice] = json.loads(engine.cli(monkeypatch, "conflicts", "--notices", "--json").stdout)
    assert (notice["code"], notice["candidates"]) == ("homonym", [second, first])
    refused = engine.attach(monkeypatch, notice["id"], first, "same")
    assert refused.exit_code == 1
    assert "is a notice" in refused.stderr
    dismissed = engine.cli(monkeypatch, "dismiss", str(notice["id"]), "--reason", "twins")
    assert dismissed.exit_code == 0, dismissed.output
    assert engine.rows("SELECT status, resolution_reason FROM store_identity_reviews") == [
        ("dismissed", "twins")
    ]
    assert engine.states() == [("1", "delivered"), ("2", "delivered")]


def test_upgrading_a_store_gives_its_patients_their_folded_traits_key(store_url: str) -> None:
    db = make_engine(store_url)
    try:
        upgrade(db, "0007")
        with db.begin() as conn:
            for pid_, name in ((1, "Pât-Trois"), (2, "")):
                conn.execute(
                    text(
                        "INSERT INTO store_patients (id, birth_name, first_given_name, "
                        "birth_date, sex, created_at, updated_at) "
                        "VALUES (:id, :name, 'Dominique', '19790328', 'F', :now, :now)"
                    ),
                    {"id": pid_, "name": name, "now": "2024-03-06 10:00:00"},
                )
        upgrade(db)
        with db.connect() as conn:
            keys = conn.execute(
                text("SELECT patient_id, trait_key FROM store_patient_trait_keys")
            ).all()
        assert [tuple(k) for k in keys] == [(1, "pat-trois|dominique|19790328|F")]
    finally:
        db.dispose()
