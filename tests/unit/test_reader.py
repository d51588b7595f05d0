"""The lazy reader against every shared sample, and against python-hl7's full parser.

Comparison rule: python-hl7 does not unescape, so fields and repetitions are compared raw
(our ``Segment.field``/``repetitions`` are raw too), and components and subcomponents are
compared as ``unescape(theirs) == ours`` with our own ``unescape``: this checks where the
text is cut, while escape sequences themselves are checked by the property test below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hl7
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import EncodingError, ParseError
from engine.hl7v2.batch import is_batch
from engine.hl7v2.charset import decode
from engine.hl7v2.escape import escape, unescape
from engine.hl7v2.reader import Message, Segment
from engine.hl7v2.separators import DEFAULT, Separators
from tests.hl7_batches import batch_messages
from tests.sample_files import SAMPLES, SHARED

if not SAMPLES.is_dir():
    pytest.skip(f"shared HL7 v2 samples not found at {SAMPLES}", allow_module_level=True)

FILES = sorted(SAMPLES.rglob("*.hl7"))


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def read_messages(path: Path) -> list[Message]:
    text, _ = decode(path.read_bytes(), "utf-8")
    return [Message(part) for part in batch_messages(text)]


def values(message: Message) -> list[list[str]]:
    """Every field of every segment, unescaped, as the reader gives them."""
    return [[seg.get(f) for f in range(1, len(seg) + 1)] for seg in message]


def test_samples_are_present() -> None:
    # The shared corpus has 80-odd files; the copies in tests/ a dozen and more.
    assert len(FILES) > (50 if SAMPLES == SHARED else 10)


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_sample_is_read_or_rejected_with_a_typed_error(path: Path) -> None:
    try:
        messages = read_messages(path)
    except (ParseError, EncodingError) as exc:
        assert exc.reason
        return
    assert messages
    for message in messages:
        assert message.msh.name == "MSH"
        assert all(isinstance(v, str) for row in values(message) for v in row)


def _assert_component_agrees(seg: Segment, f: int, r: int, c: int, theirs: Any) -> None:
    seps = seg._seps
    if isinstance(theirs, str):
        assert seg.get(f, c, rep=r) == unescape(theirs, seps), (seg.name, f, r, c)
        return
    assert seg.get(f, c, rep=r) == unescape(str(theirs), seps), (seg.name, f, r, c)
    for s, sub in enumerate(theirs, start=1):
        assert seg.get(f, c, s, r) == unescape(sub, seps), (seg.name, f, r, c, s)


def _assert_field_agrees(seg: Segment, f: int, theirs: Any) -> None:
    assert seg.field(f) == str(theirs), (seg.name, f)
    if (seg.name == "MSH" and f <= 2) or not str(theirs):
        return
    # python-hl7 keeps a field without any separator as a bare string.
    reps = [theirs[0]] if isinstance(theirs[0], str) else list(theirs)
    assert seg.repetitions(f) == [str(rep) for rep in reps], (seg.name, f)
    for r, rep in enumerate(reps, start=1):
        components = [rep] if isinstance(rep, str) else list(rep)
        for c, comp in enumerate(components, start=1):
            _assert_component_agrees(seg, f, r, c, comp)


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_field_access_agrees_with_python_hl7(path: Path) -> None:
    try:
        messages = read_messages(path)
    except (ParseError, EncodingError):
        pytest.skip("rejected by our reader (checked above)")
    for parsed in messages:
        # python-hl7 strips white space around the whole message; so do we, for this test.
        cr_text = "\r".join(seg.text for seg in parsed).strip()
        message = Message(cr_text)
        try:
            theirs = hl7.parse(cr_text)
        except Exception:  # python-hl7 raises assorted types; only its verdict matters here
            pytest.skip("python-hl7 does not accept this sample")
        assert [seg.name for seg in message] == [str(s[0]) for s in theirs]
        for seg, their_seg in zip(message, theirs, strict=True):
            assert len(seg) == len(their_seg) - 1, seg.name
            for f in range(1, len(their_seg)):
                _assert_field_agrees(seg, f, their_seg[f])


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_cr_lf_and_crlf_separated_variants_give_the_same_fields(path: Path) -> None:
    try:
        messages = read_messages(path)
    except (ParseError, EncodingError):
        pytest.skip("rejected by our reader (checked above)")
    for message in messages:
        texts = [seg.text for seg in message]
        expected = values(message)
        for newline in ("\r", "\n", "\r\n"):
            assert values(Message(newline.join(texts) + newline)) == expected, repr(newline)


def test_msh_1_is_the_field_separator_and_msh_2_the_encoding_characters() -> None:
    message = read_messages(SAMPLES / "python-hl7" / "sample_hl7.hl7")[0]
    assert message.get("MSH-1") == "|"
    assert message.get("MSH-2") == "^~\\&"
    assert message.get("MSH-3") == "GHH LAB"
    assert message.get("MSH-9.1") == "ORU"
    assert message.control_id == "CNTRL-3456"


def test_non_standard_separators_sample_is_read_with_its_own_delimiters() -> None:
    message = read_messages(SAMPLES / "python-hl7" / "nonstandard_separators.hl7")[0]
    assert message.separators == Separators("$", "%", "~", "\\", "&")
    assert message.get("MSH-1") == "$"
    assert message.get("MSH-3") == "GHH LAB"
    assert message.get("PID-3") == "555-44-4444"
    assert message.get("PID-5.1") == "EVERYWOMAN"
    assert message.get("PID-5.6") == "L"


def test_repetitions_and_subcomponents_are_numbered_from_one() -> None:
    message = read_messages(SAMPLES / "python-hl7" / "rep_sample_hl7.hl7")[0]
    assert message.get("PID-3.2.2") == "Sub-Component2"
    assert message.get("PID-4[2]") == "Repeat2"
    assert message.get("PID-4[3]") == ""


TEXT = st.text(st.characters(exclude_categories=["Cs"]))


@given(TEXT)
def test_unescape_reverses_escape_for_any_text(text: str) -> None:
    assert unescape(escape(text, DEFAULT), DEFAULT) == text


@given(TEXT)
def test_unescape_reverses_escape_with_non_standard_separators(text: str) -> None:
    seps = Separators("$", "%", "~", "\\", "&")
    assert unescape(escape(text, seps), seps) == text


@given(TEXT)
def test_escaped_text_holds_no_delimiter_but_the_escape_character(text: str) -> None:
    escaped = escape(text, DEFAULT)
    assert not set(escaped) & set(
        DEFAULT.field + DEFAULT.component + DEFAULT.repetition + DEFAULT.subcomponent + "\r\n"
    )


def test_batch_file_is_split_into_its_messages() -> None:
    text, _ = decode((SAMPLES / "python-hl7" / "sample_file1.hl7").read_bytes(), "utf-8")
    assert is_batch(text)
    parts = batch_messages(text)
    assert len(parts) == 3
    assert all(part.startswith("MSH|") for part in parts)
    assert not any(seg[:3] in ("BHS", "BTS", "FHS", "FTS") for p in parts for seg in p.split("\r"))


def test_segment_outside_any_batch_message_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="outside any message"):
        batch_messages("BHS|^~\\&|A\rEVN|A04\rMSH|^~\\&|A\rBTS|1")


def test_single_message_is_not_a_batch() -> None:
    text = "MSH|^~\\&|A|B\rPID|1"
    assert not is_batch(text)
    assert batch_messages(text) == [text]
