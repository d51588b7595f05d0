"""Every sample file, sent with python-hl7's ``mllp_send`` (a client nobody here wrote), gets an
answer from the running engine, which stays up; what it refuses is kept as a dead letter."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hl7.client import read_loose

from tests.e2e.engine_process import EngineProcess
from tests.e2e.test_acks_hl7apy_strict import is_acknowledgment
from tests.sample_files import SAMPLES

MLLP_SEND = Path(sys.executable).with_name("mllp_send")
FILES = sorted(SAMPLES.glob("*/*.hl7"))
ACK = re.compile(rb"MSA\|(?P<code>[A-Z]{2})\|[^\r\x1c]*(?:\rERR\|[^\r\x1c]*)?")

pytestmark = pytest.mark.skipif(not FILES, reason=f"no samples under {SAMPLES}")


def send(port: int, path: Path) -> list[bytes]:
    """Run mllp_send --loose on a file; returns the MSA segment of each answer (and its ERR
    segment, if any)."""
    out = subprocess.run(
        [str(MLLP_SEND), "--loose", "-p", str(port), "-f", str(path), "127.0.0.1"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    return [m.group(0) for m in ACK.finditer(out)]


def test_every_sample_file_gets_an_answer_and_refusals_are_dead_letters(
    engine_proc: EngineProcess,
) -> None:
    sent = 0
    accepted = 0
    refused: set[str] = set()  # MSA-2 of every NAK
    for path in FILES:
        messages = list(read_loose(io.BytesIO(path.read_bytes())))
        if all(is_acknowledgment(m) for m in messages):
            continue  # never answered (mllp_send would wait): test_acks_hl7apy_strict.py
        expected = len(messages)
        acks = send(engine_proc.port, path)
        assert len(acks) == expected, f"{path.name}: {expected} sent, {len(acks)} answers"
        for msa in acks:
            code = msa[4:6]
            assert code in (b"AA", b"CA", b"AE", b"AR", b"CE", b"CR"), msa
            msa_line, _, err_line = msa.decode("latin-1").partition("\rERR|")
            fields = msa_line.split("|")
            if code in (b"AA", b"CA"):
                accepted += 1
            else:
                refused.add(fields[2])
                # MSA-3, or ERR-8 from v2.7 on (MSA-3 was withdrawn there).
                err = err_line.split("|")
                reason = fields[3] if len(fields) > 3 else err[7] if len(err) > 7 else ""
                assert reason.strip(), f"{path.name}: NAK without a reason: {msa!r}"
        sent += expected
        assert engine_proc.alive(), f"engine died after {path.name}"
    engine_proc.wait_idle()
    journaled = engine_proc.scalar("SELECT count(*) FROM journal_messages")
    dead_at_intake = {
        cid or ""
        for cid in engine_proc.column(
            "SELECT control_id FROM journal_messages "
            "WHERE state = 'dead_lettered' AND error_stage = 'intake'"
        )
    }
    # Every NAK names a message kept as a dead letter (resends get the same NAK, not a row).
    assert refused and refused == dead_at_intake
    assert journaled <= sent  # resent messages (same sender and MSH-10) are journaled once
    ended = engine_proc.scalar(
        "SELECT count(*) FROM journal_messages "
        "WHERE state IN ('delivered', 'dead_lettered', 'held', 'review')"
    )
    # Every journaled message reached an end state, or waits for its patient (results for
    # patients no sample admits: held, 902) or for an identity decision (review).
    assert ended == journaled
    waiting = engine_proc.column(
        "SELECT DISTINCT state || ' ' || error_code FROM journal_messages "
        "WHERE state IN ('held', 'review')"
    )
    assert waiting == ["held 902"], "the samples' only identity problem is unknown patients"
    assert engine_proc.scalar("SELECT count(*) FROM journal_messages WHERE state = 'delivered'")
    assert accepted > 0
    assert engine_proc.terminate() == 0
    assert_logs_hold_no_patient_data(engine_proc.log.read_text(encoding="utf-8"))


#: Names and identifiers that appear in the sample messages (PID-3, PID-5, OBX-5 texts).
PATIENT_DATA = ("PAT-TROIS", "279035121518989", "EVERYWOMAN", "DUCK", "DONALD", "000003")


def assert_logs_hold_no_patient_data(log: str) -> None:
    """Contract 8: JSON events with ids, never names, identifiers or payloads."""
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines, "the engine logged nothing"
    events = [json.loads(line) for line in lines]  # every line is a JSON event
    assert any("message_id" in e for e in events)
    for needle in PATIENT_DATA:
        assert needle not in log, f"patient data {needle!r} found in the engine's log"


def test_the_french_admission_sample_lands_in_the_record_store(engine_proc: EngineProcess) -> None:
    acks = send(engine_proc.port, SAMPLES / "fr-ans" / "adt_a01_sgl.hl7")
    assert acks == [b"MSA|AA|3975"]
    engine_proc.wait_idle()
    family = engine_proc.scalar(
        "SELECT p.birth_name FROM store_patients p JOIN store_patient_identifiers i "
        "ON i.patient_id = p.id WHERE i.value = '000003' AND i.type_code = 'PI'"
    )
    assert family == "PAT-TROIS"
    assert engine_proc.terminate() == 0


def test_unreadable_bytes_get_a_nak_and_the_engine_keeps_serving(
    engine_proc: EngineProcess,
) -> None:
    bad = SAMPLES / "python-hl7" / "cp1252_byte.hl7"
    (nak,) = send(engine_proc.port, bad)
    assert nak.startswith(b"MSA|AR||") and b"UTF-8" in nak
    good = send(engine_proc.port, SAMPLES / "intl-mixed" / "ADT-A04-01.hl7")
    assert good and good[0].startswith(b"MSA|AA|")
    dead = engine_proc.scalar(
        "SELECT error_code FROM journal_messages WHERE state = 'dead_lettered'"
    )
    assert dead == "invalid_encoding"
    raw = engine_proc.scalar(
        "SELECT raw FROM journal_messages WHERE error_code = 'invalid_encoding'"
    )
    assert bytes(raw) == bad.read_bytes().strip(b"\r\n")
