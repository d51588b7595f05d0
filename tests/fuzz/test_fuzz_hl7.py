"""Fuzzing the HL7 v2 reader, header reading, batch splitting and escaping: typed errors only."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.hl7v2.batch import holds_several, is_batch
from engine.hl7v2.escape import escape, unescape
from engine.hl7v2.msh import read_header
from engine.hl7v2.reader import Message, split_segments
from engine.hl7v2.separators import Separators
from tests.fuzz.harness import fuzz_target
from tests.fuzz.mutations import hl7_texts, separators
from tests.hl7_batches import batch_messages

_PATHS = ("MSH-9.2", "MSH-10", "MSH-18[2]", "PID-3[2].4.2", "PID-5.1.1", "OBX-5[3]", "EVN-99")


def _read_everything(msg: Message) -> None:
    """Every accessor on every segment: none may raise on a message that parsed."""
    for path in _PATHS:
        assert isinstance(msg.get(path), str)
    assert isinstance(msg.message_type + msg.trigger + msg.control_id, str)
    for seg in msg:
        for number in range(min(len(seg), 40) + 2):  # a huge-field mutation has 1M fields
            seg.components(number, rep=2)
            for rep in (1, 2):
                assert isinstance(seg.get(number, 1, 2, rep=rep), str)


@fuzz_target("hl7_reader", hl7_texts())
def test_the_reader_raises_only_engine_errors_and_reads_every_field_it_parsed(case: str) -> None:
    try:
        msg = Message(case)
    except EngineError:
        return
    _read_everything(msg)


@fuzz_target("hl7_header", hl7_texts())
def test_the_header_is_read_or_refused_with_an_engine_error(case: str) -> None:
    try:
        header = read_header(case)
    except EngineError:
        return
    assert all(isinstance(value, str) for value in (header.control_id, header.message_type))
    assert header.separators == Separators.from_header(case.lstrip(" \t\r\n\ufeff"))


@fuzz_target("hl7_batch", hl7_texts())
def test_a_batch_is_split_into_messages_or_refused(case: str) -> None:
    try:
        messages = batch_messages(case)
    except EngineError:
        return
    if not is_batch(case) and not holds_several(case):
        # No envelope and no second message or trailer: one message, its segments as the
        # reader splits them.
        assert messages == ["\r".join(split_segments(case))]
    else:
        assert all(m.startswith("MSH") for m in messages)
        assert not any(
            s[:3] in ("FHS", "BHS", "BTS", "FTS") for m in messages for s in m.split("\r")
        )


_ESCAPE_CASES = st.tuples(separators(), st.text(max_size=100))


@fuzz_target("hl7_escape", _ESCAPE_CASES)
def test_an_escaped_value_holds_no_delimiter_and_unescapes_to_itself(
    case: tuple[str, str],
) -> None:
    chars, value = case
    seps = Separators(*chars)
    escaped = escape(value, seps)
    assert unescape(escaped, seps) == value
    assert not set(escaped) & set(chars[:2] + chars[2] + chars[4])
    assert all(ord(c) >= 0x20 and c != "\x7f" for c in escaped.replace(seps.escape, ""))


@pytest.mark.parametrize("text", ["MSH", "MSH\rPID|1||X", "MSH\nPID|1", "MSH\r\rEVN|A01"])
def test_a_first_segment_that_is_only_msh_is_refused_as_a_parse_error(text: str) -> None:
    with pytest.raises(EngineError):
        read_header(text)
    with pytest.raises(EngineError):
        Message(text)
