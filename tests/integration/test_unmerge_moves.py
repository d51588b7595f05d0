"""Undoing an A40 sorts what was filed on the survivor since the merge by the identifiers its
message names: over MLLP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.identity_harness import IdentityEngine, adt, nir, oru, pid

INS = nir("2790351215189")
GONE = "GONE^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"


@pytest.fixture
def engine(store_url: str) -> Iterator[IdentityEngine]:
    running = IdentityEngine(store_url)
    yield running
    running.stop()


def merged(engine: IdentityEngine, *then: str) -> tuple[object, object, object]:
    """KEEP (qualified) absorbs GONE (provisional), then ``then``: (survivor, absorbed, merge)."""
    engine.send(
        adt("A28", pid("KEEP", INS), "1"),
        adt("A28", pid("GONE", status=""), "2"),
        adt("A40", pid("KEEP", INS), "3", mrg=GONE),
        *then,
    )
    [(survivor, absorbed, merge_id)] = engine.rows(
        "SELECT survivor_id, absorbed_id, id FROM store_merges"
    )
    return survivor, absorbed, merge_id


def test_undoing_a_merge_moves_back_a_result_filed_through_the_absorbed_ipp(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    survivor, absorbed, merge_id = merged(
        engine,
        oru(pid("GONE", status=""), "4", "7.7"),
        oru(pid("KEEP", INS), "5", "8.8"),
    )
    assert engine.observations(survivor) == ["7.7", "8.8"]  # the merge made them one
    done = engine.cli(monkeypatch, "unmerge", str(merge_id), "--reason", "wrong A40")
    assert done.exit_code == 0, done.output
    assert engine.observations(absorbed) == ["7.7"]
    assert engine.observations(survivor) == ["8.8"]
    assert engine.rows("SELECT code FROM store_identity_reviews") == [("homonym",)]


def test_a_result_naming_both_patients_stays_and_goes_to_review_then_attaching_moves_it(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    both = pid("GONE", status="", more_ids=("KEEP^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI",))
    survivor, absorbed, merge_id = merged(engine, oru(both, "4", "6.6"))
    assert engine.observations(survivor) == ["6.6"]
    done = engine.cli(monkeypatch, "unmerge", str(merge_id), "--reason", "wrong A40")
    assert done.exit_code == 0, done.output
    assert "1 message(s) filed since the merge name both patients" in done.stdout
    assert engine.observations(survivor) == ["6.6"]  # not guessed
    [review] = json.loads(engine.cli(monkeypatch, "conflicts", "--json").stdout)
    assert (review["code"], sorted(review["candidates"])) == ("904", sorted([survivor, absorbed]))
    assert engine.states()[3] == ("4", "delivered")
    attached = engine.attach(monkeypatch, review["id"], absorbed, "the lab confirmed GONE")
    assert attached.exit_code == 0, attached.output
    assert "1 filed row(s) moved" in attached.stdout
    assert engine.observations(absorbed) == ["6.6"]
    assert engine.observations(survivor) == []
    assert engine.states()[3] == ("4", "delivered")


def test_a_visit_opened_through_the_absorbed_ipp_after_the_merge_goes_back(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    survivor, absorbed, merge_id = merged(engine, adt("A01", pid("GONE", status=""), "4"))
    assert engine.rows("SELECT patient_id FROM store_encounters") == [(survivor,)]
    assert engine.cli(monkeypatch, "unmerge", str(merge_id), "--reason", "x").exit_code == 0
    assert engine.rows("SELECT patient_id FROM store_encounters") == [(absorbed,)]
