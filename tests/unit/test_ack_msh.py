"""The MSH of an ACK from its per-sender template is the MSH ``build_segment`` renders field by
field, for any header (separators, escapes, control characters, empty and overlong values),
and the template cache stays bounded."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.hl7v2 import ack_msh
from engine.hl7v2.ack_msh import _charset, _msh, build_segment, msh_segment
from engine.hl7v2.msh import Header, read_header
from engine.hl7v2.separators import Separators

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "hl7v2"
NOW = datetime(2026, 12, 3, 18, 4, 5)


def field_by_field(header: Header, now: datetime, control_id: str, charset: str | None) -> str:
    fields = _msh(header, now, control_id, _charset(header, charset))
    return build_segment("MSH", fields, header.separators)


def test_every_sample_header_gets_the_same_msh_as_field_by_field() -> None:
    headers = []
    for path in sorted(SAMPLES.rglob("*.hl7")):
        text = path.read_bytes().decode("latin-1")
        start = text.find("MSH")
        if start >= 0:
            headers.append(read_header(text[start:].replace("\n", "\r")))
    assert len(headers) > 20
    for header in headers:
        for charset in (None, "ASCII"):
            expected = field_by_field(header, NOW, "ACK123", charset)
            assert msh_segment(header, NOW, "ACK123", charset) == expected


text = st.text(alphabet=st.sampled_from("AB12.^~\\&|#!$ \r\n\x0b\x1céZ"), max_size=30)
separator_sets = st.sampled_from(
    [Separators(), Separators("#", "!", "~", "$", "&"), Separators("|", "^", "~", "\\", "&")]
)


@settings(max_examples=400, deadline=None)
@given(
    seps=separator_sets,
    values=st.lists(text, min_size=10, max_size=10),
    long_app=st.booleans(),
    control_id=st.text(max_size=40),
    charset=st.one_of(st.none(), text),
)
def test_any_header_gets_the_same_msh_as_field_by_field(
    seps: Separators,
    values: list[str],
    long_app: bool,
    control_id: str,
    charset: str | None,
) -> None:
    app, facility, recv, recv_facility, trigger, processing, version, version_id, cs, _ = values
    header = Header(
        separators=seps,
        sending_app=app * (40 if long_app else 1),
        sending_facility=facility,
        receiving_app=recv,
        receiving_facility=recv_facility,
        message_type="ORU",
        trigger=trigger,
        control_id="MSG1",
        processing_id=processing,
        version=version,
        charset=cs,
        version_id=version_id,
    )
    control_id = control_id or "ACK1"  # build_ack always passes one
    expected = field_by_field(header, NOW, control_id, charset)
    assert msh_segment(header, NOW, control_id, charset) == expected
    # Cached now: the second answer is the same, with another time and control id.
    later = datetime(2027, 1, 2, 3, 4, 5)
    assert msh_segment(header, later, "ACK2", charset) == field_by_field(
        header, later, "ACK2", charset
    )


def test_the_template_cache_stays_bounded() -> None:
    ack_msh._MSH_TEMPLATES.clear()
    for i in range(ack_msh.MSH_TEMPLATES_MAX + 10):
        msh_segment(Header(sending_app=f"APP{i}", version="2.5"), NOW, "ACK1", None)
    assert 0 < len(ack_msh._MSH_TEMPLATES) <= ack_msh.MSH_TEMPLATES_MAX
