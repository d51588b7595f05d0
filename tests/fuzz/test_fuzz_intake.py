"""Fuzzing intake, message by message and as an MLLP stream: every frame gets exactly one
answer or a counted refusal, and no exception escapes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import strategies as st

from engine.adapters.mllp_framing import (
    END_BLOCK,
    START_BLOCK,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    Junk,
    frame,
)
from engine.cda.standalone import read_standalone
from engine.errors import EngineError
from engine.hl7v2.reader import Message
from engine.intake.rules import DocumentRules, MessageRules
from engine.journal.records import Appended
from tests.fuzz.answers import check_answers, check_prepared
from tests.fuzz.harness import fuzz_target
from tests.fuzz.mutations import cda_payloads, hl7_payloads

#: ``accept`` lists: everything, the sample types, and a narrow one (many refusals).
ACCEPT = st.sampled_from([("*",), ("ADT^*", "ORU^R01", "MDM^*", "SIU^*"), ("ADT^A01",)])
DEFAULTS = st.sampled_from(["UNICODE UTF-8", "8859/1", "ASCII"])

IntakeCase = tuple[bytes, tuple[str, ...], str]


@fuzz_target(
    "intake_message",
    st.tuples(st.one_of(hl7_payloads(), hl7_payloads(), cda_payloads()), ACCEPT, DEFAULTS),
)
def test_every_payload_is_prepared_without_raising_and_answered(case: IntakeCase) -> None:
    payload, accept, default = case
    intake = MessageRules("fuzz", accept, default)
    prepared = intake.prepare(payload, "127.0.0.1:1")
    check_prepared(prepared)
    check_answers(intake, prepared)


_DOC_ACCEPT = st.sampled_from([("*",), ("CDA^*",), ("CDA^11502-2",)])


@fuzz_target("intake_document", st.tuples(cda_payloads(), _DOC_ACCEPT), scale=0.5)
def test_every_document_is_prepared_without_raising_and_answered(
    case: tuple[bytes, tuple[str, ...]],
) -> None:
    payload, accept = case
    try:
        doc = read_standalone(payload)
    except EngineError:
        doc = None
    intake = DocumentRules("docs", accept, "UNICODE UTF-8")
    prepared = intake.prepare(payload, "127.0.0.1:1")
    check_prepared(prepared)
    if doc is not None:
        assert prepared.header.control_id == doc.header.document_id
    check_answers(intake, prepared)


def _clean(payload: bytes) -> bytes:
    return payload.replace(START_BLOCK, b"").replace(END_BLOCK, b"")


StreamCase = tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[int, ...], int]
_JUNK = st.sampled_from([b"", b"", b"\r\n", b"MSH|^~\\&|unframed\r", b"\x1c\r", b"\x00\xff"])


@st.composite
def streams(draw: st.DrawFn) -> StreamCase:
    """Payloads, the junk before each, where ``recv`` cut the stream, and the size limit."""
    payloads = tuple(draw(st.lists(hl7_payloads().map(_clean), max_size=4)))
    junk = tuple(draw(st.lists(_JUNK, min_size=len(payloads), max_size=len(payloads))))
    size = sum(len(p) + len(j) + 3 for p, j in zip(payloads, junk, strict=True))
    cuts = tuple(sorted(set(draw(st.lists(st.integers(0, size), max_size=8)))))
    limit = draw(st.sampled_from([10 * 1024 * 1024, 64 * 1024, 1024]))
    return payloads, junk, cuts, limit


@fuzz_target("intake_stream", streams(), scale=0.5)
def test_every_frame_of_a_stream_gets_exactly_one_answer_or_a_counted_refusal(
    case: StreamCase,
) -> None:
    """As the MLLP source does: frames go to intake, junk is counted, an oversized frame is
    refused (its head kept) and ends the connection, so no later frame is read."""
    payloads, junk, cuts, limit = case
    data = b"".join(j + frame(p) for p, j in zip(payloads, junk, strict=True))
    bounds = [0, *cuts, len(data)]
    decoder = FrameDecoder(limit)
    intake = MessageRules("fuzz", ("*",), "UNICODE UTF-8")
    answered: list[bytes] = []
    junk_bytes, refused = 0, None
    for start, end in itertools.pairwise(bounds):
        try:
            items: list[Frame | Junk] = decoder.feed(data[start:end])
        except FrameTooLarge as exc:
            items, refused = exc.decoded, exc
        for item in items:
            if isinstance(item, Junk):
                junk_bytes += item.size
            else:
                prepared = intake.prepare(item.payload, "127.0.0.1:1")
                check_prepared(prepared)
                check_answers(intake, prepared)
                answered.append(item.payload)
        if refused is not None:
            prepared = intake.prepare_rejected(refused.head, "127.0.0.1:1", refused)
            check_answers(intake, prepared)
            break
    if refused is None:
        assert answered == list(payloads)
        assert junk_bytes == sum(len(j) for j in junk)
    else:
        oversized = payloads[len(answered)]
        assert answered == list(payloads[: len(answered)])
        assert len(oversized) > limit


@pytest.mark.parametrize(
    "payload",
    [
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|\xe9X|P|2.5\rPID|1",  # MSA-2 "?X"
        b"MSH\xa7\xb0~\\&\xa7A\xa7B\xa7C\xa7D\xa7\xa7\xa7ADT\xb0A01\xa71\xa7P\xa72.5",  # MSH??~
    ],
)
def test_the_nak_for_undecodable_bytes_reads_back_and_names_their_control_id(
    payload: bytes,
) -> None:
    intake = MessageRules("fuzz", ("*",), "UNICODE UTF-8")
    prepared = intake.prepare(payload, "127.0.0.1:1")
    row = prepared.row
    stored = Appended(1, False, str(row.ack_code), row.error_code, row.error_reason)
    ack = intake.ack(prepared, stored, None)
    assert ack is not None
    assert Message(ack.decode(prepared.codec)).get("MSA-2") == prepared.header.control_id
