"""Every sample file sent to the running engine: each answer is a valid ACK for the version of
the message it answers, as hl7apy reads it in strict mode (a parser nobody here wrote), and an
acknowledgment sent to the engine gets no answer at all.

hl7apy cannot read some valid ACKs; those are the listed exceptions, each with its reason, and
each is still checked as far as hl7apy can check it."""

from __future__ import annotations

import io
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from hl7.client import read_loose
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import ValidationError
from hl7apy.parser import parse_message, parse_segment

from engine.adapters.mllp_framing import frame
from engine.hl7v2.ack_shapes import version_key
from engine.hl7v2.batch import is_batch
from engine.hl7v2.charset import decode
from engine.hl7v2.msh import first_line, read_batch_header, read_header
from engine.hl7v2.reader import Message
from tests.e2e.engine_process import EngineProcess
from tests.e2e.mllp_client import read_ack
from tests.hl7_batches import batch_messages
from tests.sample_files import COPIES, SAMPLES, SHARED

FILES = sorted({*SAMPLES.glob("*/*.hl7"), *COPIES.glob("*/*.hl7")})
#: How long an acknowledgment sent to the engine is watched for an answer that must not come.
SILENCE_SECONDS = 0.5

pytestmark = pytest.mark.skipif(not FILES, reason=f"no samples under {SAMPLES}")

#: Known exceptions: ACKs hl7apy 1.3.5 cannot validate as a message, and why.
HL7APY_CANNOT_READ_BEFORE_2_3_1 = (
    "hl7apy looks the structure of a v2.1-2.3 message up as ACK_<trigger> (MSH-9 has two "
    "components before v2.3.1) and its tables hold only ACK: it refuses every ACK of those "
    "versions, ours included. Each segment is validated strictly on its own instead."
)
NO_CONTROL_ID_TO_ECHO = (
    "the message has no MSH-10 (cut short before it, or no readable MSH): MSA-2 is required, "
    "and there is nothing to echo in it"
)


@dataclass
class Exchange:
    """One message sent and the answer it got (None: none within the wait)."""

    file: Path
    sent: bytes
    answer: bytes | None


def messages_of(path: Path) -> list[bytes]:
    """A batch file is one payload (FHS/BHS); other files hold messages one after another."""
    data = path.read_bytes()
    text = data.decode("latin-1").lstrip("\ufeff\r\n ")
    if first_line(text)[:3] in ("FHS", "BHS"):
        return [data.strip(b"\r\n")]
    return list(read_loose(io.BytesIO(data)))


def is_acknowledgment(message: bytes) -> bool:
    try:
        return read_header(message.decode("latin-1")).message_type == "ACK"
    except Exception:
        return False


def exchange_all(port: int) -> list[Exchange]:
    out = []
    for path in FILES:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for message in messages_of(path):
                sock.sendall(frame(message))
                sock.settimeout(SILENCE_SECONDS if is_acknowledgment(message) else 30)
                try:
                    answer: bytes | None = read_ack(sock).strip(b"\x0b\x1c\r")
                except TimeoutError:
                    answer = None
                out.append(Exchange(path, message, answer))
    return out


def acks_in(answer: str) -> list[str]:
    """The ACKs of an answer: the answer itself, or each ACK of a batch acknowledgement."""
    if first_line(answer)[:3] in ("FHS", "BHS"):
        return batch_messages(answer)
    return [answer]


def batch_ids(sent: bytes, answer: str) -> set[str]:
    """What an ACK in a batch answer may name: each message's MSH-10, FHS-11 and BHS-11, and
    the batch id the answer's BHS-12 refers to (one generated for a batch without any)."""
    if first_line(answer)[:3] not in ("FHS", "BHS"):
        return set()
    text = sent.decode("latin-1")
    ids = {read_batch_header(text).control_id} if is_batch(text) else set()
    for segment in text.replace("\n", "\r").split("\r"):
        if segment[:3] == "MSH":
            ids.add(control_id(segment.encode("latin-1")))
    for segment in answer.split("\r"):
        if segment[:3] == "BHS":
            ids.add(segment.split("|")[11] if segment.count("|") >= 11 else "")  # BHS-12
    return ids - {""}


def control_id(message: bytes) -> str:
    try:
        return read_header(message.decode("latin-1")).control_id
    except Exception:
        return ""


def strict_problem(ack: str, sent: bytes) -> str | None:
    """Why hl7apy strict refuses ``ack`` (None: valid, or a listed exception checked as far
    as hl7apy can)."""
    version = Message(ack).get("MSH-12.1")
    try:
        if version_key(version) < (2, 3, 1):  # HL7APY_CANNOT_READ_BEFORE_2_3_1
            for segment in ack.split("\r"):
                parse_segment(segment, version=version, validation_level=VALIDATION_LEVEL.STRICT)
            return None
        parse_message(ack, validation_level=VALIDATION_LEVEL.STRICT).validate()
    except ValidationError as exc:
        if "MSA_2" in str(exc) and not control_id(sent):  # NO_CONTROL_ID_TO_ECHO
            return None
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def test_every_ack_to_every_sample_is_valid_for_its_version_and_acks_get_no_answer(
    engine_proc: EngineProcess,
) -> None:
    exchanges = exchange_all(engine_proc.port)
    problems = []
    acks_sent = 0
    for ex in exchanges:
        if is_acknowledgment(ex.sent):
            acks_sent += 1
            assert ex.answer is None, f"{ex.file.name}: an ACK was answered: {ex.answer!r}"
            continue
        assert ex.answer is not None, f"{ex.file.name}: no answer"
        # Its MSH-18 says how to read it; without one, the channel's default (as the message).
        text, _ = decode(ex.answer, "UNICODE UTF-8")
        for ack_text in acks_in(text):
            # MSA-2 names the message (in a batch: one of its messages, or the batch), whole.
            named = Message(ack_text).get("MSA-2")
            assert named == control_id(ex.sent) or named in batch_ids(ex.sent, text)
            problem = strict_problem(ack_text, ex.sent)
            if problem:
                problems.append(f"{ex.file.parent.name}/{ex.file.name}: {problem}")
    if SAMPLES == SHARED:  # the copies in tests/ hold a few messages and no acknowledgment
        assert acks_sent == 3, "the samples hold three acknowledgments (fr-ans/ack_*.hl7)"
        assert len(exchanges) - acks_sent >= 100
    assert not problems, "\n".join(problems)
    # The acknowledgments were journaled all the same, as dead letters of this channel.
    kept = engine_proc.scalar(
        "SELECT count(*) FROM journal_messages WHERE message_type = 'ACK' "
        "AND state = 'dead_lettered'"
    )
    assert kept == acks_sent
    assert engine_proc.terminate() == 0
