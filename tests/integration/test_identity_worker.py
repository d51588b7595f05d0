"""Identity rules where the worker's batching matters: messages journaled together, then one
worker run, as when the pipeline is behind intake."""

from __future__ import annotations

from sqlalchemy import Engine, text

from engine.channels.loader import parse_channels
from engine.intake.rules import MessageRules
from engine.journal.journal import Journal
from engine.pipeline.worker import Worker
from engine.runtime.wiring import build_worker
from tests.integration.identity_harness import adt, oru, pid

CHANNELS = """
engine: {identity: {accept_test_ins: true}}
channels:
  - name: hospital
    source: {type: mllp, port: 2575}
    accept: ["ADT^*", "ORU^R01"]
    destinations: {store: {type: record_store}}
"""


def run(db: Engine, *messages: str) -> list[tuple[str, str]]:
    """Journal ``messages`` in one go, run the worker until idle; (MSH-10, state) of each."""
    config = parse_channels(CHANNELS)
    channel = config.channels[0]
    intake = MessageRules(channel.name, channel.accept, channel.source.default_charset)
    with db.connect() as conn:
        Journal(db).append(conn, [intake.prepare(m.encode(), "test").row for m in messages])
    worker: Worker = build_worker(config, db)
    while worker.run_once():
        pass
    with db.connect() as conn:
        rows = conn.execute(text("SELECT control_id, state FROM journal_messages ORDER BY id"))
        return [(str(r[0]), str(r[1])) for r in rows]


def observations(db: Engine) -> list[str]:
    with db.connect() as conn:
        return [str(r[0]) for r in conn.execute(text("SELECT value FROM store_observations"))]


def test_released_results_are_filed_before_the_patients_later_messages(db: Engine) -> None:
    run(db, oru(pid("IPP1"), "1", "3.9"))  # held: nobody knows IPP1 yet
    states = run(
        db,
        adt("A28", pid("IPP1"), "2"),
        adt("A08", pid("IPP1", dob="19790329"), "3"),  # corrects the birth date
        oru(pid("IPP1", dob="19790329"), "4", "4.4"),
    )
    # The held result is filed right after the registration, before the correction: with the
    # birth date it was sent with, it matches; after the A08 it would be a 904 conflict.
    assert states == [
        ("1", "delivered"),
        ("2", "delivered"),
        ("3", "delivered"),
        ("4", "delivered"),
    ]
    assert observations(db) == ["3.9", "4.4"]
    with db.connect() as conn:
        released = conn.execute(
            text("SELECT message_id FROM journal_events WHERE code = 'released'")
        ).scalars()
        assert list(released) == [1]


def test_a_result_naming_the_ipp_under_another_cx4_form_is_filed_and_released(
    db: Engine,
) -> None:
    lab_form = pid("IPP1").replace("IPP1^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI", "IPP1^^^CHU-X^PI")
    assert run(db, oru(lab_form, "1")) == [("1", "held")]
    assert run(db, adt("A28", pid("IPP1"), "2")) == [("1", "delivered"), ("2", "delivered")]
    assert run(db, oru(lab_form, "3"))[-1] == ("3", "delivered")
    oid_only = pid("IPP1").replace("CHU-X&1.2.250", "&1.2.250")
    assert run(db, oru(oid_only, "4"))[-1] == ("4", "delivered")


def test_a_message_whose_only_identifier_is_an_unusable_ins_is_a_dead_letter(
    db: Engine,
) -> None:
    states = run(db, oru(pid("", "279035121518989", status="PROV"), "1"))
    assert states == [("1", "dead_lettered")]
    with db.connect() as conn:
        assert conn.execute(text("SELECT error_code FROM journal_messages")).scalar() == (
            "missing_patient"
        )
        assert conn.execute(text("SELECT count(*) FROM journal_holds")).scalar() == 0
