"""The normalised digest a resend is recognised by (contract 3): computed with one hash of the
kept segments, it is the digest of the segment by segment definition for any message (line
ends, blanks, blank lines, batch envelopes, several MSH, no MSH at all)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.journal.records import _ENVELOPE, _blank_msh7, _hl7_start, normalised_digest
from engine.payload_kinds import looks_like_xml

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "hl7v2"


def by_definition(raw: bytes) -> str:
    """The digest as defined, one segment at a time (the journal's code before issue 11)."""
    start = -1 if looks_like_xml(raw) else _hl7_start(raw)
    if start < 0:
        return normalised_digest(raw)  # not HL7 v2: content_digest, not under test here
    body = raw[start:]
    body = body.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    digest = hashlib.sha256()
    first = True
    for segment in body.split(b"\r"):
        segment = segment.rstrip(b" \t")
        if not segment or segment[:3] in _ENVELOPE:
            continue
        if segment[:3] == b"MSH":
            segment = _blank_msh7(segment)
        if not first:
            digest.update(b"\r")
        digest.update(segment)
        first = False
    return digest.hexdigest()


def test_every_sample_message_has_its_digest_by_definition() -> None:
    paths = sorted(SAMPLES.rglob("*.hl7"))
    assert paths
    for path in paths:
        raw = path.read_bytes()
        assert normalised_digest(raw) == by_definition(raw), path.name


def test_the_digest_ignores_msh_7_line_ends_and_trailing_blanks() -> None:
    plain = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rPID|1||X^^^H\rOBX|1|ST|||v"
    resent = b"MSH|^~\\&|A|B|C|D|20250505||ORU^R01|1|P|2.5 \r\nPID|1||X^^^H\n\nOBX|1|ST|||v\r\n"
    assert normalised_digest(resent) == normalised_digest(plain)
    assert normalised_digest(plain.replace(b"|v", b"|w")) != normalised_digest(plain)


def test_an_envelope_without_a_message_has_its_digest_by_definition() -> None:
    for raw in (b"BHS|^~\\&|A|B|C|D|2024\rPID|1", b"FHS|^~\\&|A|B|C|D|2024", b"MSH\r\rBTS|0"):
        assert normalised_digest(raw) == by_definition(raw), raw


_MSH = [
    b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5",
    b"MSH#^~\\&#A#B#C#D#2024##ADT^A01#9#P#2.5",
    b"MSH|^~\\&|A",
    b"MSH",
]
_BODY = [b"PID|1||X^^^H", b"OBX|1|ST|||v", b"ZZZ|\xc3\xa9"]
#: What normalising drops or changes besides the first MSH-7.
_ODD = [
    b"OBX|1|ST|||v  ",
    b"OBX|2|ST|||w\t",
    b"FHS|^~\\&",
    b"BHS|^~\\&",
    b"BTS|1",
    b"FTS|1",
    b"",
    b" ",
    b"\t \t",
    b"\xef\xbb\xbf",
    *_MSH,
]
_ENDS = st.sampled_from([b"\r", b"\n", b"\r\n", b"\n\r"])


@pytest.mark.parametrize("odd", _ODD)
@pytest.mark.parametrize("where", [0, 1, 3])
def test_a_message_with_one_thing_to_normalise_has_its_digest_by_definition(
    odd: bytes, where: int
) -> None:
    segments = [_MSH[0], *_BODY]
    segments.insert(where, odd)
    for end in (b"\r", b"\n", b"\r\n"):
        for raw in (end.join(segments), end.join(segments) + end):
            assert normalised_digest(raw) == by_definition(raw), raw


@settings(max_examples=500, deadline=None)
@given(
    lead=st.sampled_from([b"", b"\xef\xbb\xbf", b"  ", b"\r\n", b"FHS|^~\\&\r"]),
    first=st.sampled_from(_MSH),
    parts=st.lists(
        st.tuples(st.sampled_from(_BODY) | st.sampled_from(_ODD), _ENDS), min_size=0, max_size=6
    ),
    end=st.sampled_from([b"", b"\r", b"\n", b"\r\n", b" ", b"\t"]),
)
def test_any_message_has_its_digest_by_definition(
    lead: bytes, first: bytes, parts: list[tuple[bytes, bytes]], end: bytes
) -> None:
    raw = lead + first + b"".join(sep + segment for segment, sep in parts) + end
    assert normalised_digest(raw) == by_definition(raw)
