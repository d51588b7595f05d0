"""The contracts of DESIGN.md §3, one named test (or more) each, end to end: MLLP in over real
sockets (python-hl7's client), the journal and the record store read back with SQL, on SQLite
and PostgreSQL. Contract 1 under SIGKILL is ``tests/e2e/test_crash.py``; contract 2 is
``test_contract_2_one_end_state.py``; the access layer of contract 9 is
``test_record_cli.py::test_patient_show_reads_through_the_access_layer_and_leaves_a_log_line``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from engine.adapters.mllp_framing import frame
from engine.journal.lookups import replay
from tests.e2e.engine_process import free_port
from tests.e2e.mllp_client import read_ack
from tests.integration.identity_harness import IdentityEngine, adt, nir, oru, pid
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine
from tests.integration.test_business_ack import LabServer

INS = nir("2790351215189")  # the ANS test patient
NAME = "SECRETNOM"


@pytest.fixture
def lab_engine(tmp_path: Path) -> Iterator[tuple[InProcessEngine, LabServer]]:
    """An engine forwarding ADTs to a lab that answers AR (a permanent refusal) for now."""
    lab = LabServer(answer="AR")
    channel = f"""
  - name: adt
    source: {{{{type: mllp, port: {{port}}}}}}
    accept: ["ADT^*"]
    destinations:
      lab: {{{{type: mllp, host: 127.0.0.1, port: {lab.port}, timeout_seconds: 2}}}}
"""
    engine = InProcessEngine(ENGINE_HEAD + channel, url=f"sqlite:///{tmp_path / 'e.db'}")
    yield engine, lab
    engine.stop()
    lab.stop()


@pytest.fixture
def engine(store_url: str) -> Iterator[IdentityEngine]:
    running = IdentityEngine(store_url)
    yield running
    running.stop()


def msa(answer: str) -> list[str]:
    return next(s for s in answer.split("\r") if s.startswith("MSA")).split("|")


def test_contract_1_an_acknowledged_message_is_already_in_the_journal_byte_for_byte(
    engine: IdentityEngine,
) -> None:
    """DESIGN §3.1: the AA comes after the commit. Read from another connection the moment each
    ACK arrives (the pipeline may not have run yet), every acknowledged message is there with
    the bytes that were sent."""
    sent = [adt("A28", pid(f"IPP{i}", name=NAME), f"C1-{i}").encode() for i in range(20)]
    with engine.connect() as sock:
        for i, payload in enumerate(sent):
            sock.sendall(frame(payload))
            assert b"MSA|AA|" in read_ack(sock)
            rows = engine.rows(
                "SELECT raw FROM journal_messages WHERE control_id = :c", c=f"C1-{i}"
            )
            assert [bytes(r[0]) for r in rows] == [payload]


def test_contract_3_a_resend_gets_the_same_answer_and_is_applied_once(
    engine: IdentityEngine,
) -> None:
    """DESIGN §3.3: same sender + MSH-10 is recognised, answered alike, applied once."""
    registration = adt("A28", pid("IPP1", INS), "1")
    result = oru(pid("IPP1", INS), "2", "4.2")
    assert engine.send(registration, result, result, registration) == ["AA"] * 4
    patient = engine.patient("IPP1")
    assert engine.observations(patient["id"]) == ["4.2"]
    assert engine.rows("SELECT count(*) FROM store_patients") == [(1,)]
    assert engine.rows("SELECT count(*) FROM journal_messages") == [(2,)]


def test_contract_3_a_dead_letter_replayed_twice_is_applied_once(
    lab_engine: tuple[InProcessEngine, LabServer],
) -> None:
    """DESIGN §3.3: the lab refused a message (AR: a dead letter); once it is fixed, an
    operator replays it twice in a row: the lab gets it once more, not twice."""
    engine, lab = lab_engine
    engine.send(adt("A28", pid("IPP1"), "1"))
    [(message_id, state)] = engine.rows("SELECT id, state FROM journal_messages")
    assert state == "dead_lettered" and len(lab.received) == 1
    lab.answer = "AA"
    with engine.engine.db.connect() as conn:
        first = replay(conn, [int(str(message_id))], "ops-anna")
        second = replay(conn, [int(str(message_id))], "ops-anna")
    assert (first, second) == ([message_id], [])
    engine.wait_idle()
    assert engine.rows("SELECT state FROM journal_messages") == [("delivered",)]
    assert len(lab.received) == 2


def test_contract_4_messages_about_one_patient_are_applied_in_arrival_order(
    engine: IdentityEngine,
) -> None:
    """DESIGN §3.4: twenty updates and twenty results of one patient, sent without waiting for
    the pipeline, are applied in the order they came. Each result carries the name its update
    just set, so a result applied before that update would go to identity review; the last
    name wins and the results are stored in sending order."""
    updates = [adt("A31", pid("IPP1", name=f"NOM{i:02d}"), f"U{i:02d}") for i in range(20)]
    results = [
        oru(pid("IPP1", name=f"NOM{i:02d}"), f"R{i:02d}", f"{i}.0").replace(
            "|||20240306101500", f"|||202403061015{i:02d}"
        )
        for i in range(20)
    ]
    messages = [m for pair in zip(updates, results, strict=True) for m in pair]
    assert engine.send(adt("A28", pid("IPP1"), "A"), *messages) == ["AA"] * 41
    patient = engine.patient("IPP1")
    assert patient["birth_name"] == "NOM19"
    assert {state for _, state in engine.states()} == {"delivered"}
    assert engine.observations(patient["id"]) == [f"{i}.0" for i in range(20)]


def test_contract_5_an_unidentifiable_result_is_never_attached_to_a_guessed_patient(
    engine: IdentityEngine,
) -> None:
    """DESIGN §3.5: a result for an unknown patient waits (held); one whose traits contradict
    the known patient's goes to review; neither writes a result anywhere."""
    engine.send(adt("A28", pid("IPP1", INS), "1"))
    engine.send(oru(pid("IPP9"), "2"), oru(pid("", INS, dob="19790329"), "3"))
    assert engine.states()[1:] == [("2", "held"), ("3", "review")]
    assert engine.rows("SELECT count(*) FROM store_observations") == [(0,)]


def test_contract_6_a_transient_error_is_retried_until_delivered(tmp_path: Path) -> None:
    """DESIGN §3.6: a destination that is down is retried with backoff (state ``retrying``),
    and the message is delivered once it comes back."""
    lab_port = free_port()
    channel = f"""
  - name: adt
    source: {{{{type: mllp, port: {{port}}}}}}
    accept: ["ADT^*"]
    destinations:
      lab: {{{{type: mllp, host: 127.0.0.1, port: {lab_port}, timeout_seconds: 1}}}}
    errors: {{{{max_attempts: 50, backoff: {{{{initial_seconds: 0.2, multiplier: 1}}}}}}}}
"""
    engine = InProcessEngine(ENGINE_HEAD + channel, url=f"sqlite:///{tmp_path / 'e.db'}")
    lab: LabServer | None = None
    try:
        assert engine.send(adt("A28", pid("IPP1"), "1"), wait=False) == ["AA"]
        deadline = time.monotonic() + 10
        while engine.rows("SELECT state, attempts FROM journal_messages")[0][1] == 0:
            assert time.monotonic() < deadline, "no attempt was made"
            time.sleep(0.05)
        [(state, attempts)] = engine.rows("SELECT state, attempts FROM journal_messages")
        assert state == "retrying" and int(str(attempts)) >= 1
        lab = LabServer(port=lab_port)
        engine.wait_idle()
        assert engine.rows("SELECT state FROM journal_messages") == [("delivered",)]
        assert len(lab.received) == 1
    finally:
        engine.stop()
        if lab is not None:
            lab.stop()


def test_contract_6_a_permanent_error_is_dead_lettered_at_once_with_its_reason(
    tmp_path: Path,
) -> None:
    """DESIGN §3.6: an invalid message is not retried; the dead letter keeps the original
    bytes, the stage, the error class and a human reason."""
    channel = """
  - name: adt
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    steps: [{{type: validate, profile: hl7apy_strict}}]
    destinations: {{store: {{type: record_store}}}}
"""
    engine = InProcessEngine(ENGINE_HEAD + channel, url=f"sqlite:///{tmp_path / 'e.db'}")
    bad = "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A01^ADT_A01|1|P|2.5\rZZZ|1"
    try:
        assert engine.send(bad) == ["AA"]
        [row] = engine.rows(
            "SELECT state, attempts, error_stage, error_class, error_reason, raw "
            "FROM journal_messages"
        )
    finally:
        engine.stop()
    state, attempts, stage, error_class, reason, raw = row
    assert (state, attempts, stage) == ("dead_lettered", 1, "validate")
    assert error_class and reason
    assert bytes(raw) == bad.encode()


def test_contract_7_bad_input_gets_a_nak_is_kept_and_the_engine_goes_on(
    engine: IdentityEngine,
) -> None:
    """DESIGN §3.7: junk, a message without a type and invalid bytes each get an AR with a
    reason, each is kept as a dead letter, and the next good message is acknowledged."""
    junk = [b"HELLO", b"MSH|^~\\&|GAM|CHU-X|||20240306||||9|P|2.5", b"MSH|^~\\&|\xff\xfe\x00"]
    for payload in junk:
        code = msa(engine.exchange(payload, encoding="latin-1"))  # echoes undecodable bytes
        assert code[1] == "AR", code
    assert engine.send(adt("A28", pid("IPP1"), "OK")) == ["AA"]
    kept = engine.rows(
        "SELECT raw, error_reason FROM journal_messages WHERE state = 'dead_lettered' ORDER BY id"
    )
    assert [bytes(r[0]) for r in kept] == junk
    assert all(r[1] for r in kept)
    assert engine.states()[-1] == ("OK", "delivered")


def test_contract_8_no_patient_data_in_the_logs(engine: IdentityEngine) -> None:
    """DESIGN §3.8: neither names, nor the INS, nor payloads reach the logs, whatever the
    outcome (delivered, held, review, refused)."""
    with structlog.testing.capture_logs() as events:
        engine.send(adt("A28", pid("IPP1", INS, name=NAME), "1"))
        engine.send(oru(pid("IPP9", name=NAME), "2"))
        engine.send(oru(pid("", INS, name=NAME, dob="19790329"), "3"))
        engine.exchange(f"MSH|^~\\&|GAM|CHU-X|||20240306||||9|P|2.5\rPID|1||{INS}".encode())
    assert events, "the engine logged nothing: the capture does not see it"
    text = json.dumps(events, default=str)
    for secret in (NAME, INS, "IPP1", "IPP9", "DOMINIQUE", "19790328"):
        assert secret not in text, secret


def test_contract_9_each_message_names_its_sender_and_each_operator_action_its_actor(
    lab_engine: tuple[InProcessEngine, LabServer],
) -> None:
    """DESIGN §3.9: the journal records who sent each message (here by channel, MSH-3 and
    MSH-4 on a plain MLLP channel) and which operator replayed a dead letter."""
    engine, lab = lab_engine
    engine.send(adt("A28", pid("IPP1"), "1"))
    [(message_id, sender)] = engine.rows("SELECT id, sender FROM journal_messages")
    assert sender == "adt:GAM^CHU-X"
    lab.answer = "AA"
    with engine.engine.db.connect() as conn:
        replay(conn, [int(str(message_id))], "ops-anna")
    engine.wait_idle()
    assert engine.rows(
        "SELECT actor FROM journal_events WHERE message_id = :i AND state = 'received'",
        i=message_id,
    ) == [("ops-anna",)]
