"""Fuzzing the ACK builder: whatever the header held, one framed ACK that reads back."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from engine.adapters.mllp_framing import frame
from engine.errors import ACK_CODES, EngineError
from engine.hl7v2.ack import AckCode, Header, build_ack
from engine.hl7v2.charset import encode_ack
from engine.hl7v2.msh import read_header
from engine.hl7v2.reader import Message
from engine.hl7v2.separators import Separators
from tests.fuzz.harness import fuzz_target
from tests.fuzz.mutations import separators

#: HL7 v2.5 lengths (chapter 2) of what an ACK echoes: HD components IS(20), ST(199), ID(6);
#: MSA-2 as v2.7's ST(199) (v2.5's 20 would cut UUIDs); MSA-3 ST(80); ERR-8 TX(250).
HD_MAX = (20, 199, 6)
CONTROL_ID_MAX = 199
MSA_TEXT_MAX = 80
ERR_TEXT_MAX = 250
#: What an ACK may weigh whatever the header held: a few kilobytes, even all escaped.
ACK_BYTES_MAX = 16 * 1024

_VALUE = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="|^~\\&\r\n\x0b\x1c\x00 éA1", max_size=30),
    st.text(alphabet="A^", min_size=200, max_size=1200),  # huge fields
)
#: Separators, then MSH-3 to MSH-6, MSH-9.1, MSH-9.2, MSH-10, MSH-11, MSH-12, MSH-15, MSH-16
#: and MSH-18 as read_header gives them, the ACK code, the reason and our error code.
AckCase = tuple[str, tuple[str, ...], str, str, str]
ACK_CASES = st.tuples(
    # A frame cannot hold <VT> or <FS>, so no MLLP sender can declare them as delimiters.
    separators().filter(lambda chars: not set(chars) & {"\x0b", "\x1c"}),
    st.tuples(*[_VALUE] * 12),
    st.sampled_from([c.value for c in AckCode]),
    _VALUE,
    st.sampled_from(["", *sorted(ACK_CODES)]),
)


def _header(chars: str, values: tuple[str, ...]) -> Header:
    return Header(Separators(*chars), *values)


def _build(case: AckCase) -> tuple[Header, str]:
    chars, values, code, text, error_code = case
    header = _header(chars, values)
    return header, build_ack(header, AckCode(code), text=text, error_code=error_code)


def echoes(read: str, original: str, limit: int) -> bool:
    """``read`` is ``original``, or (only when the original is over the limit) its cut."""
    return read == original or (len(original) > limit and original.startswith(read))


def _components(designator: str) -> list[str]:
    parts = designator.split("^")
    while parts and not parts[-1]:
        parts.pop()
    return parts


def echoes_designator(read: str, original: str) -> bool:
    """An HD echoed whole, or cut to its components' lengths when it is over them."""
    got, sent = _components(read), _components(original)
    limits = (*HD_MAX, *[0] * len(got))  # no component past the third may be cut
    return len(got) <= len(sent) and all(
        echoes(g, s, limit) for g, s, limit in zip(got, sent, limits, strict=False)
    )


@fuzz_target("ack_builder", ACK_CASES)
def test_an_ack_is_one_framed_message_that_reads_back_whatever_the_header_held(
    case: AckCase,
) -> None:
    header, ack = _build(case)
    code = AckCode(case[2])
    assert not set(ack) & {"\n", "\x0b", "\x1c"}
    frame(encode_ack(ack, "utf-8"))  # raises if a block character got through
    msg = Message(ack)
    assert [s.name for s in msg] == ["MSH", "MSA"] + ([] if code.ok else ["ERR"])
    msa = msg.segment("MSA")
    assert msa is not None
    assert msa.get(1) == code.value
    assert echoes(msa.get(2), header.control_id, CONTROL_ID_MAX)
    back = read_header(ack)
    assert back.message_type == "ACK"
    assert echoes_designator(back.sending_app, header.receiving_app)
    assert echoes_designator(back.receiving_facility, header.sending_facility)


@fuzz_target("ack_lengths", ACK_CASES)
def test_an_ack_echoes_header_fields_within_their_hl7_lengths(case: AckCase) -> None:
    _, ack = _build(case)
    assert len(encode_ack(ack, "utf-8")) <= ACK_BYTES_MAX
    msg = Message(ack)
    msh = msg.msh
    for number in (3, 4, 5, 6):
        parts = msh.components(number)
        assert len(parts) <= len(HD_MAX)
        assert all(len(p) <= size for p, size in zip(parts, HD_MAX, strict=False))
    assert len(msg.get("MSA-2")) <= CONTROL_ID_MAX
    assert len(msg.get("MSA-3")) <= MSA_TEXT_MAX
    assert len(msg.get("ERR-8")) <= ERR_TEXT_MAX


def test_a_header_declaring_a_block_character_as_delimiter_is_refused() -> None:
    with pytest.raises(EngineError):
        Separators.from_header("MSH|^~\\\x1c|A")
