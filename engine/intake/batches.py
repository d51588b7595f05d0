"""Intake of HL7 v2 batches (FHS/BHS/BTS/FTS, or several MSH in one payload).

A batch is read whole before anything is journaled (:func:`engine.hl7v2.batch.read_envelope`:
envelope structure, trailer counts; then every message's MSH and character set). Any fault
refuses the whole batch with one reason: the payload is kept as one dead letter and answered
with a batch acknowledgement whose single ACK says AR. A valid batch becomes one journal row
per message, each checked as a message received alone would be (accepted type, patient key,
carried documents: a refusal there is that message's dead letter and AR), each with its batch
id (BHS-11, else FHS-11, else a digest of the payload) and its position in its batch; all
rows are handed to the writer as one job, so they commit in one transaction or not at all.
Resends are recognised per message by the journal (contract 3): a batch sent again is
answered as the first time and applies nothing twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

from engine.errors import ACK_CODES, EngineError, ParseError
from engine.hl7v2.ack import AckCode, build_ack, commit_code, new_control_id
from engine.hl7v2.batch import Envelope, envelope_field, read_envelope
from engine.hl7v2.batch_ack import AnsweredBatch, build_batch_ack
from engine.hl7v2.charset import encode_ack
from engine.hl7v2.msh import Header, first_line, read_batch_header, read_header
from engine.intake.outcomes import EndState
from engine.intake.prepared import BatchParts, Prepared
from engine.intake.rules import MessageRules as Intake
from engine.intake.sink import Result
from engine.journal.message_tables import State
from engine.journal.records import Appended, NewMessage

#: End states an answer after processing reports as ``AA``.
_APPLIED = frozenset({State.DELIVERED, State.FILTERED})
#: A generated batch id: this many hex digits of the payload's SHA-256.
_GENERATED_DIGITS = 16
#: Bytes of a batch read again for its first segment when answering.
_HEAD_BYTES = 64 * 1024


def prepare_batch(intake: Intake, row: NewMessage, text: str, codec: str) -> Prepared:
    """Check a whole batch (``row`` holds the payload, ``text`` its decoded text)."""
    generated = "B" + hashlib.sha256(row.raw).hexdigest()[:_GENERATED_DIGITS]
    try:
        envelope = read_envelope(text)
        parts = BatchParts(envelope, envelope.file_control_id or _first_id(envelope) or generated)
        several = len(envelope.batches) > 1
        for number, batch in enumerate(envelope.batches, start=1):
            batch_id = batch.control_id or envelope.file_control_id or generated
            if several and not batch.control_id:
                batch_id = f"{batch_id}.{number}"
            for position, message in enumerate(batch.messages, start=1):
                prepared = _message(intake, row, message, codec, position, batch.starts)
                prepared.row.batch_id, prepared.row.batch_position = batch_id, position
                parts.messages.append(prepared)
                parts.batch_of.append(number)
    except EngineError as exc:
        return refuse_batch(intake, row, text, codec, exc, generated)
    header = _batch_header(text)
    row.batch_id = parts.batch_id
    return Prepared(row, header, codec, None, batch=parts)


def refuse_batch(
    intake: Intake, row: NewMessage, text: str, codec: str, error: EngineError, generated: str
) -> Prepared:
    """The whole payload kept as one dead letter for ``error``, under its batch id: FHS-11 or
    BHS-11, else ``generated`` (never a message's MSH-10: a message sent alone later under
    that id would look like a control id reused)."""
    header = _batch_header(text)
    if first_line(text)[:3] == "MSH" or not header.control_id:
        header = dataclasses.replace(header, control_id=generated)
    row.batch_id = header.control_id
    prepared = intake._reject(row, header, codec, None, error)
    prepared.batch = BatchParts(None, header.control_id)
    return prepared


def _message(
    intake: Intake, batch: NewMessage, text: str, codec: str, position: int, starts: list[int]
) -> Prepared:
    """One message of the batch prepared as if received alone (same peer and sender)."""
    where = f"message {position} of its batch (segment {starts[position - 1]})"
    try:
        read_header(text)
    except ParseError as exc:
        raise ParseError(f"{where}: {exc.reason}") from None
    prepared = intake.prepare(text.encode(codec), batch.peer, batch.sender)
    if prepared.codec != codec:
        raise ParseError(f"{where} declares another character set (MSH-18) than the first message")
    return prepared


def _first_id(envelope: Envelope) -> str:
    return next((b.control_id for b in envelope.batches if b.control_id), "")


def _batch_header(text: str) -> Header:
    """The header the answer echoes: FHS/BHS fields (a batch without them: its first MSH)."""
    try:
        if first_line(text)[:3] == "MSH":
            return read_header(text)
        return read_batch_header(text)
    except ParseError:
        return Header()


# -- answers ---------------------------------------------------------------------------------


def is_stored(results: Sequence[Result]) -> bool:
    return all(isinstance(r, Appended) for r in results)


def batch_answer(
    prepared: Prepared,
    results: Sequence[Result],
    processed: Sequence[EndState | None] | None = None,
) -> bytes | None:
    """The batch acknowledgement: one ACK per message (AA/AE/AR; for a resend, the answer
    its original got), or for a refused batch one AR naming the batch. None when every
    message of the batch is itself an acknowledgment (never answered)."""
    parts = prepared.batch
    assert parts is not None
    head = prepared.row.raw[:_HEAD_BYTES]  # the first segment is all the answer echoes
    text = first_line(head.decode(prepared.codec, errors="replace"))
    file_header = text if text[:3] == "FHS" else None
    envelope = parts.envelope
    if envelope is None or prepared.error is not None:
        ack = _ack(prepared, results[0] if results else prepared.error, None)
        reason = prepared.error.reason if prepared.error is not None else ""
        answered = [AnsweredBatch(_answered_line(text), parts.batch_id, [ack], reason)]
        seps = prepared.header.separators
        file_id = envelope_field(file_header, seps, 11)
        body = build_batch_ack(seps, file_header, file_id, answered, new_control_id())
        return encode_ack(body, prepared.codec)
    if parts.messages and not any(p.answer for p in parts.messages):
        return None
    acks: list[list[str]] = [[] for _ in envelope.batches]
    for i, (message, result) in enumerate(zip(parts.messages, results, strict=True)):
        if message.answer:
            done = processed[i] if processed is not None else None
            acks[parts.batch_of[i] - 1].append(_ack(message, result, done))
    answered = [
        AnsweredBatch(b.header or (b.messages[0] if b.messages else None), b.control_id, a)
        for b, a in zip(envelope.batches, acks, strict=True)
    ]
    body = build_batch_ack(
        envelope.separators, file_header, envelope.file_control_id, answered, new_control_id()
    )
    return encode_ack(body, prepared.codec)


def _answered_line(first: str) -> str | None:
    """FHS, BHS and MSH carry the designators an answer swaps at the same positions."""
    return first if first[:3] in ("FHS", "BHS", "MSH") else None


def _ack(prepared: Prepared, result: Result | EngineError | None, done: EndState | None) -> str:
    """One message's ACK, always in original mode (AA/AE/AR): the batch answer is the one
    answer, whatever MSH-15/16 asked."""
    if isinstance(result, Appended):
        original = AckCode(result.ack_code)
        ok, reject = original is AckCode.AA, original is AckCode.AR
        text, code = result.error_reason or "", result.error_code or ""
        if ok and done is not None and done.state not in _APPLIED:
            ok, text, code = False, done.reason, done.code
            reject = ACK_CODES.get(code) == "AR" or done.state is State.DISCARDED
    elif isinstance(result, EngineError):
        ok, reject, text, code = False, result.ack_code == "AR", result.reason, result.code
    else:
        raise ValueError("an ACK needs the journal result or the failure")
    return build_ack(
        prepared.header,
        commit_code(False, ok, reject),
        text=text,
        error_code=code,
        charset=prepared.ack_charset,
    )
