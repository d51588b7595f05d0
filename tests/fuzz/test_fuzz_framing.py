"""Fuzzing the MLLP framer: whatever the bytes and however ``recv`` cuts them, the same frames."""

from __future__ import annotations

import itertools

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
from tests.fuzz.harness import fuzz_target
from tests.fuzz.mutations import hl7_payloads

Stream = tuple[bytes, tuple[int, ...]]

#: Streams heavy in the bytes the framer looks at.
_RAW = st.binary(max_size=300) | st.text(alphabet="\x0b\x1c\rM|\n", max_size=300).map(str.encode)


def _clean(payload: bytes) -> bytes:
    return payload.replace(START_BLOCK, b"").replace(END_BLOCK, b"")


_JUNK = st.sampled_from([b"", b"", b"\r", b"\n", b"\r\n", b"MSH|^~\\&|forgot", b"\x1c\r", b"\x00"])


@st.composite
def framed_stream(draw: st.DrawFn) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Payloads (without block characters) and the junk written before each one."""
    payloads = draw(st.lists(hl7_payloads().map(_clean), max_size=4))
    junk = draw(st.lists(_JUNK, min_size=len(payloads), max_size=len(payloads)))
    return tuple(payloads), tuple(junk)


@st.composite
def chunked(draw: st.DrawFn, streams: st.SearchStrategy[bytes]) -> Stream:
    """A stream and where ``recv`` cut it."""
    data = draw(streams)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return data, tuple(sorted(set(cuts)))


def _chunks(data: bytes, cuts: tuple[int, ...]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _decode(chunks: list[bytes], max_size: int) -> tuple[list[bytes], int, bool]:
    """Frames, junk byte count, and whether a frame was too large (decoding stops there)."""
    decoder = FrameDecoder(max_size)
    items: list[Frame | Junk] = []
    too_large = False
    for chunk in chunks:
        try:
            items += decoder.feed(chunk)
        except FrameTooLarge as exc:
            items += exc.decoded
            too_large = True
            break
    frames = [i.payload for i in items if isinstance(i, Frame)]
    return frames, sum(i.size for i in items if isinstance(i, Junk)), too_large


_ANY_STREAM = st.one_of(
    _RAW,
    framed_stream().map(lambda s: b"".join(j + frame(p) for p, j in zip(*s, strict=True))),
    st.lists(st.one_of(hl7_payloads(), _RAW), max_size=3).map(
        lambda parts: b"\x0b".join(parts) + b"\x1c\r"
    ),
)


@fuzz_target("framer_chunking", chunked(_ANY_STREAM))
def test_any_chunking_of_a_stream_gives_the_frames_of_one_chunk(case: Stream) -> None:
    data, cuts = case
    limit = len(data) + 1  # nothing is too large: this property is about chunk boundaries
    whole = _decode([data], limit)
    assert _decode(_chunks(data, cuts), limit) == whole
    assert not whole[2]


@fuzz_target("framer_payloads", framed_stream())
def test_every_framed_payload_comes_out_once_in_order_and_junk_is_counted(
    case: tuple[tuple[bytes, ...], tuple[bytes, ...]],
) -> None:
    payloads, junk = case
    data = b"".join(j + frame(p) for p, j in zip(payloads, junk, strict=True))
    frames, junk_bytes, too_large = _decode([data], max(len(data), 1))
    assert frames == list(payloads)
    # A CR right after <FS> ends the frame before it, so it is not junk.
    assert junk_bytes == sum(len(j) for j in junk)
    assert not too_large


@st.composite
def limited(draw: st.DrawFn) -> tuple[bytes, tuple[int, ...], int]:
    data, cuts = draw(chunked(_ANY_STREAM))
    return data, cuts, draw(st.integers(1, 64))


@fuzz_target("framer_limit", limited())
def test_a_frame_over_the_limit_is_refused_whatever_the_chunking(
    case: tuple[bytes, tuple[int, ...], int],
) -> None:
    data, cuts, limit = case
    assert _decode(_chunks(data, cuts), limit) == _decode([data], limit)
