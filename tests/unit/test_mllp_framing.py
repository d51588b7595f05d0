"""MLLP framing without sockets: chunks in, frames and junk reports out."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.adapters.mllp_framing import (
    CARRIAGE_RETURN,
    END_BLOCK,
    START_BLOCK,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    Junk,
    frame,
)
from engine.errors import FramingError, MessageTooLarge

MSG = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||123\r"


def test_frame_wraps_the_payload_in_block_characters() -> None:
    assert frame(b"abc") == b"\x0babc\x1c\x0d"
    assert frame(b"abc") == START_BLOCK + b"abc" + END_BLOCK + CARRIAGE_RETURN


def test_frame_refuses_a_payload_holding_a_block_character() -> None:
    with pytest.raises(FramingError):
        frame(b"a\x1cb")


def test_frame_split_byte_by_byte_is_decoded_once() -> None:
    decoder = FrameDecoder(max_size=1000)
    out: list[Frame | Junk] = []
    for byte in frame(MSG):
        out += decoder.feed(bytes([byte]))
    assert out == [Frame(MSG)]
    assert not decoder.in_frame


def test_several_frames_in_one_chunk_come_out_in_order() -> None:
    decoder = FrameDecoder(max_size=1000)
    chunk = frame(b"one") + frame(b"two") + frame(b"three")
    assert decoder.feed(chunk) == [Frame(b"one"), Frame(b"two"), Frame(b"three")]


def test_junk_before_start_block_is_reported_not_raised() -> None:
    decoder = FrameDecoder(max_size=1000)
    out = decoder.feed(b"\n" + frame(b"one") + b"MSH|^~\\&|forgot framing" + frame(b"two"))
    assert out == [
        Junk(1, b"\n"),
        Frame(b"one"),
        Junk(len(b"MSH|^~\\&|forgot framing"), b"MSH|^~\\&"),
        Frame(b"two"),
    ]


def test_chunk_without_any_frame_is_all_junk() -> None:
    assert FrameDecoder(max_size=10).feed(b"hello world, no framing") == [Junk(23, b"hello wo")]


def test_restarted_frame_reports_the_abandoned_part_as_junk() -> None:
    decoder = FrameDecoder(max_size=1000)
    assert decoder.feed(b"\x0bhalf a mess") == []
    assert decoder.feed(b"age\x0bwhole\x1c\x0d") == [Junk(14, b"half a m"), Frame(b"whole")]


def test_end_block_split_from_carriage_return_across_chunks() -> None:
    decoder = FrameDecoder(max_size=1000)
    assert decoder.feed(b"\x0bone\x1c") == [Frame(b"one")]
    assert decoder.feed(b"\x0d\x0btwo\x1c\x0d") == [Frame(b"two")]


def test_end_block_without_carriage_return_is_tolerated() -> None:
    decoder = FrameDecoder(max_size=1000)
    assert decoder.feed(b"\x0bone\x1c\x0btwo\x1c") == [Frame(b"one"), Frame(b"two")]
    assert decoder.feed(b"\x0bthree\x1c\x0d") == [Frame(b"three")]


def test_payload_of_exactly_max_size_is_accepted() -> None:
    decoder = FrameDecoder(max_size=100)
    assert decoder.feed(frame(b"x" * 100)) == [Frame(b"x" * 100)]


def test_payload_one_byte_over_max_size_raises_message_too_large() -> None:
    decoder = FrameDecoder(max_size=100)
    with pytest.raises(MessageTooLarge) as info:
        decoder.feed(frame(b"x" * 101))
    assert "100-byte limit" in info.value.reason
    assert info.value.code == "message_too_large"


def test_oversized_frame_raises_before_its_end_arrives() -> None:
    decoder = FrameDecoder(max_size=100)
    assert decoder.feed(b"\x0b" + b"x" * 60) == []
    with pytest.raises(MessageTooLarge):
        decoder.feed(b"x" * 41)


def test_frames_completed_before_an_oversized_one_are_handed_over() -> None:
    decoder = FrameDecoder(max_size=10)
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(frame(b"small") + b"\x0b" + b"y" * 11)
    assert info.value.decoded == [Frame(b"small")]


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_size=0)


PAYLOADS = st.lists(
    st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")),
    max_size=8,
)


@given(PAYLOADS, st.lists(st.integers(min_value=0, max_value=4000), max_size=20))
def test_framed_payloads_cut_anywhere_decode_to_the_same_payloads(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(p) for p in payloads)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    decoder = FrameDecoder(max_size=300)
    out: list[Frame | Junk] = []
    for start, end in itertools.pairwise(points):
        out += decoder.feed(stream[start:end])
    assert out == [Frame(p) for p in payloads]
    assert not decoder.in_frame
