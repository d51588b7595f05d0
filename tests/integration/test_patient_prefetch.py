"""A batch's patients fetched ahead of its messages (engine.pipeline.identify.prefetch), on
SQLite and PostgreSQL: one lookup statement for the batch's results, and never a stale answer
after an ADT, a merge or an A47 earlier in the same batch (patient safety, DESIGN.md §3.5).

A wrong "held" would only make the batch's first pass fail and be redone message by message
(without the prefetch); the cases that matter are those where a stale answer would file a result
under the wrong patient or with the wrong traits, committed with the batch.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from engine.channels.config import ChannelConfig
from engine.identity.model import LocalId
from engine.journal.journal import Journal
from engine.journal.message_tables import State
from engine.pipeline.identify import prefetch
from engine.pipeline.identify.prefetch import message_identifiers
from engine.pipeline.worker import Worker
from engine.runtime.wiring import build_pipeline
from engine.store import batch, patients
from engine.store.record_core import observations
from tests.integration.identity_harness import adt, oru, pid
from tests.integration.test_worker_batches import counted, receive, states

LOCAL = "^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"


@pytest.fixture
def db(migrated_db: Engine) -> Engine:
    return migrated_db


def run(db: Engine, channel: ChannelConfig, *messages: str) -> list[int]:
    """Journal ``messages`` and process them as one batch (the worker fetches its patients
    ahead, :meth:`engine.pipeline.worker.Worker._pass`)."""
    ids = receive(db, channel, *(m.encode() for m in messages))
    worker = Worker(db, Journal(db), {channel.name: build_pipeline(channel)})
    while worker.run_once():
        pass
    return ids


def patient_id(db: Engine, ipp: str) -> int:
    with db.connect() as conn:
        found = patients.lookup(conn, [], (pid_local(ipp),))[1]
    assert len(found) == 1
    return next(iter(found))


def pid_local(ipp: str) -> LocalId:
    return LocalId(ipp, "CHU-X", "1.2.250.1.71.4.2.2", "PI")


def filed_under(db: Engine, message_id: int) -> set[int]:
    o = observations.c
    with db.connect() as conn:
        rows = conn.execute(select(o.patient_id).where(o.message_id == message_id))
        return {int(r[0]) for r in rows}


def test_the_results_of_a_batch_look_their_patients_up_in_one_statement(
    db: Engine, hospital: ChannelConfig
) -> None:
    run(db, hospital, *(adt("A28", pid(f"P{n}", status=""), f"R{n}") for n in range(3)))
    results = [oru(pid(f"P{n % 3}", status=""), f"O{n}") for n in range(9)]
    ids = receive(db, hospital, *(m.encode() for m in results))
    worker = Worker(db, Journal(db), {hospital.name: build_pipeline(hospital)})
    with counted(db) as seen:
        assert worker.run_once() == len(ids)
    assert states(db, ids) == [State.DELIVERED] * len(ids)
    lookups = [s for s in seen.sql if "store_patient_identifiers" in s]
    assert len(lookups) == 1
    for n, message_id in enumerate(ids):
        assert filed_under(db, message_id) == {patient_id(db, f"P{n % 3}")}


def test_a_result_after_an_a40_of_its_patient_in_the_same_batch_is_filed_under_the_survivor(
    db: Engine, hospital: ChannelConfig
) -> None:
    run(db, hospital, adt("A28", pid("KEEP", status=""), "1"), adt("A28", pid("GONE"), "2"))
    keep, gone = patient_id(db, "KEEP"), patient_id(db, "GONE")
    assert keep != gone
    ids = run(
        db,
        hospital,
        oru(pid("GONE"), "3"),
        adt("A40", pid("KEEP", status=""), "4", mrg=f"GONE{LOCAL}"),
        oru(pid("GONE"), "5"),
    )
    assert states(db, ids) == [State.DELIVERED] * 3
    assert filed_under(db, ids[2]) == {keep}  # a stale lookup would give the absorbed patient
    assert filed_under(db, ids[0]) == {keep}  # moved by the merge


def test_after_an_a47_in_the_same_batch_a_result_with_the_former_identifier_is_held(
    db: Engine, hospital: ChannelConfig
) -> None:
    run(db, hospital, adt("A28", pid("OLD1", status=""), "1"))
    ids = run(
        db,
        hospital,
        oru(pid("OLD1", status=""), "2"),
        adt("A47", pid("NEW1", status=""), "3", mrg=f"OLD1{LOCAL}"),
        oru(pid("OLD1", status=""), "4"),
        oru(pid("NEW1", status=""), "5"),
    )
    assert states(db, ids) == [State.DELIVERED, State.DELIVERED, State.HELD, State.DELIVERED]
    assert filed_under(db, ids[2]) == set()
    assert filed_under(db, ids[3]) == {patient_id(db, "NEW1")}


def test_a_result_after_a_trait_change_in_the_same_batch_is_compared_with_the_new_traits(
    db: Engine, hospital: ChannelConfig
) -> None:
    run(db, hospital, adt("A28", pid("P1", status=""), "1"))
    ids = run(
        db,
        hospital,
        adt("A08", pid("P1", name="PAT-QUATRE", status=""), "2"),
        oru(pid("P1", status=""), "3"),  # the former birth name: a conflict now
    )
    assert states(db, ids) == [State.DELIVERED, State.REVIEW]
    assert filed_under(db, ids[1]) == set()
    again = run(db, hospital, oru(pid("P1", name="PAT-QUATRE", status=""), "4"))
    assert states(db, again) == [State.DELIVERED]


def test_a_patient_created_in_the_batch_is_found_by_its_later_results(
    db: Engine, hospital: ChannelConfig
) -> None:
    ids = run(db, hospital, adt("A28", pid("NEW", status=""), "1"), oru(pid("NEW", status=""), "2"))
    assert states(db, ids) == [State.DELIVERED, State.DELIVERED]
    assert filed_under(db, ids[1]) == {patient_id(db, "NEW")}


def test_a_lookup_of_values_not_fetched_ahead_queries_the_store(
    db: Engine, hospital: ChannelConfig
) -> None:
    run(db, hospital, adt("A28", pid("P1", status=""), "1"), adt("A28", pid("P2"), "2"))
    p1, p2 = patient_id(db, "P1"), patient_id(db, "P2")
    with db.connect() as conn, batch.opened(conn):
        patients.prefetch(conn, [], ["P1"])
        with counted(db) as seen:
            assert list(patients.lookup(conn, [], (pid_local("P1"),))[1]) == [p1]
            assert seen.sql == []
            assert list(patients.lookup(conn, [], (pid_local("P2"),))[1]) == [p2]
            assert len(seen.sql) == 1
        other = LocalId("P1", "ELSEWHERE", "", "PI")
        assert patients.lookup(conn, [], (other,)) == ({}, {})  # another authority's P1


def test_a_message_s_identifiers_are_read_from_its_pid_3() -> None:
    raw = oru(pid("IPP7", "1790328123456", status=""), "1").encode()
    assert message_identifiers(raw, "utf-8") == (["1790328123456"], ["IPP7"])
    assert message_identifiers(b"<ClinicalDocument/>", "") == ([], [])
    assert message_identifiers(b"not hl7", "utf-8") == ([], [])


def test_results_after_a_patient_change_fetch_the_batch_s_patients_once_more(
    db: Engine, hospital: ChannelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an ADT that changes a patient, the results left in the batch are looked up in one
    statement again, not one each (and see the change: see the tests above)."""
    run(db, hospital, *(adt("A28", pid(f"P{n}", status=""), f"R{n}") for n in range(14)))

    def lookups(control: str) -> int:
        batch_of = [adt("A08", pid("P13", name=f"PAT-{control}", status=""), f"{control}A")]
        batch_of += [oru(pid(f"P{n}", status=""), f"{control}{n}") for n in range(12)]
        ids = receive(db, hospital, *(m.encode() for m in batch_of))
        worker = Worker(db, Journal(db), {hospital.name: build_pipeline(hospital)})
        with counted(db) as seen:
            assert worker.run_once() == len(ids)
        assert states(db, ids) == [State.DELIVERED] * len(ids)
        for n, message_id in enumerate(ids[1:]):
            assert filed_under(db, message_id) == {patient_id(db, f"P{n}")}
        return len([s for s in seen.sql if "store_patient_identifiers" in s])

    again = lookups("X")
    monkeypatch.setattr(prefetch, "REFETCH_MIN", 1_000)
    one_each = lookups("Y")
    assert one_each - again == 12 - 1
