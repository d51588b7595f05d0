"""Fuzzing character set detection: a typed refusal or text, and an ACK that always encodes."""

from __future__ import annotations

from hypothesis import strategies as st

from engine.errors import EncodingError
from engine.hl7v2.charset import CHARSETS, codec_name, decode, encode_ack, header_charset
from tests.fuzz.harness import fuzz_target
from tests.fuzz.mutations import hl7_payloads

#: Channel defaults a configuration may hold (each accepted by ``codec_name``).
DEFAULTS = ("UNICODE UTF-8", "8859/1", "ASCII", "8859/15", "cp1252", "latin-1")


@fuzz_target("charset_decode", st.tuples(hl7_payloads(), st.sampled_from(DEFAULTS)))
def test_bytes_are_decoded_or_refused_with_an_encoding_error(case: tuple[bytes, str]) -> None:
    raw, default = case
    declared = header_charset(raw)
    try:
        text, codec = decode(raw, default)
    except EncodingError:
        return
    if declared:
        assert codec == CHARSETS[declared.upper()]
    # What was decoded encodes back to the same bytes (less a BOM): nothing was altered.
    assert text.encode(codec) == raw.removeprefix(b"\xef\xbb\xbf")


@fuzz_target(
    "charset_encode_ack",
    st.tuples(st.text(max_size=200), st.sampled_from(sorted(set(CHARSETS.values())))),
)
def test_an_ack_encodes_in_any_accepted_charset_and_only_unfit_characters_change(
    case: tuple[str, str],
) -> None:
    text, codec = case
    written = encode_ack(text, codec).decode(codec)
    assert len(written) == len(text)
    assert all(w == c or w == "?" for w, c in zip(written, text, strict=True))


@fuzz_target("charset_name", st.text(max_size=30))
def test_any_configured_charset_name_is_resolved_or_refused_without_raising(case: str) -> None:
    name = codec_name(case)
    assert name is None or "MSH|".encode(name) == b"MSH|"
