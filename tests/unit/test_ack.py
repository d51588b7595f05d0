"""ACK and NAK building: structure, escaping, and what other HL7 libraries read back."""

from __future__ import annotations

from datetime import datetime

import hl7
import pytest
from hl7apy.parser import parse_message

from engine.errors import EncodingError, ParseError, UnknownPatient
from engine.hl7v2.ack import (
    ENGINE_TO_HL7,
    HL7_ERRORS,
    AckCode,
    build_ack,
    build_nak,
    build_segment,
    commit_code,
    fallback_header,
    hl7_error_code,
    new_control_id,
    wants_ack,
)
from engine.hl7v2.msh import Header, read_header
from engine.hl7v2.reader import Message
from engine.hl7v2.separators import DEFAULT, Separators

ORIGINAL = (
    "MSH|^~\\&|LAB|HOSP^1.2.250.1.71^ISO|EHR|CLINIC|20240101120000||ORU^R01^ORU_R01|"
    "MSG-42|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8\r"
    "PID|1||123^^^HOSP^PI||DUPONT^JEAN\r"
)
NOW = datetime(2024, 1, 2, 3, 4, 5)
NASTY = "bad | field ^ comp ~ rep \\ esc & sub"


@pytest.fixture
def header() -> Header:
    return read_header(ORIGINAL)


def test_msa_2_is_the_original_control_id(header: Header) -> None:
    ack = Message(build_ack(header, AckCode.AA))
    assert ack.get("MSA-1") == "AA"
    assert ack.get("MSA-2") == "MSG-42"


def test_sending_and_receiving_application_and_facility_are_swapped(header: Header) -> None:
    ack = Message(build_ack(header, AckCode.AA))
    assert ack.get("MSH-3") == "EHR"
    assert ack.get("MSH-4") == "CLINIC"
    assert ack.get("MSH-5") == "LAB"
    assert ack.get("MSH-6") == "HOSP^1.2.250.1.71^ISO"
    assert ack.get("MSH-6.2") == "1.2.250.1.71"


def test_ack_header_fields_follow_the_original(header: Header) -> None:
    ack = Message(build_ack(header, AckCode.CA, now=NOW, control_id="A1"))
    assert ack.get("MSH-7") == "20240102030405"
    assert ack.get("MSH-9") == "ACK^R01^ACK"
    assert ack.get("MSH-10") == "A1"
    assert ack.get("MSH-11") == "P"
    assert ack.get("MSH-12") == "2.5^FRA^2.11"  # echoed whole (PAM-FR)
    assert ack.get("MSH-18") == "UNICODE UTF-8"


def test_ack_escapes_field_separator_in_reason(header: Header) -> None:
    text = build_ack(header, AckCode.AE, text=NASTY, error_code="invalid_message")
    msa = next(line for line in text.split("\r") if line.startswith("MSA"))
    assert msa.count("|") == 3
    ack = Message(text)
    assert ack.get("MSA-3") == NASTY
    assert ack.get("ERR-8") == NASTY


def test_reason_line_breaks_cannot_add_segments(header: Header) -> None:
    text = build_ack(header, AckCode.AR, text="line one\r\nPID|1||666\nline three")
    assert [line[:3] for line in text.split("\r")] == ["MSH", "MSA", "ERR"]
    assert Message(text).get("MSA-3") == "line one PID|1||666 line three"


def test_control_id_with_delimiters_is_echoed_escaped() -> None:
    header = read_header(ORIGINAL.replace("MSG-42", "A\\F\\B"))
    assert header.control_id == "A|B"
    ack = build_ack(header, AckCode.AA)
    assert "|A\\F\\B" in ack
    assert Message(ack).get("MSA-2") == "A|B"


@pytest.mark.parametrize("code", [AckCode.AA, AckCode.CA])
def test_positive_ack_has_no_err_segment(header: Header, code: AckCode) -> None:
    ack = Message(build_ack(header, code, text="fine"))
    assert ack.segment("ERR") is None
    assert ack.get("MSA-3") == "fine"


@pytest.mark.parametrize("code", [AckCode.AE, AckCode.AR, AckCode.CE, AckCode.CR])
def test_negative_ack_carries_an_err_segment(header: Header, code: AckCode) -> None:
    ack = Message(build_ack(header, code, text="boom", error_code="transform_failed"))
    assert ack.get("MSA-1") == code.value
    assert ack.get("ERR-3") == "207^Application internal error^HL70357"
    assert ack.get("ERR-4") == "E"
    assert ack.get("ERR-5") == "transform_failed"
    assert ack.get("ERR-8") == "boom"


def test_nak_maps_engine_errors_to_table_0357(header: Header) -> None:
    ack = Message(build_nak(header, ParseError("no PID segment")))
    assert ack.get("MSA-1") == "AR"
    assert ack.get("ERR-3.1") == "100"
    assert ack.get("ERR-3.3") == "HL70357"
    assert ack.get("ERR-5") == "parse_error"
    assert ack.get("ERR-8") == "no PID segment"
    assert Message(build_nak(header, UnknownPatient("x"))).get("ERR-3.1") == "204"
    assert Message(build_nak(header, EncodingError("x"))).get("ERR-3.1") == "102"


def test_every_mapped_code_is_in_table_0357() -> None:
    assert set(ENGINE_TO_HL7.values()) <= set(HL7_ERRORS)
    assert hl7_error_code("no_such_code") == "207"


def test_python_hl7_reads_msa_of_the_ack(header: Header) -> None:
    parsed = hl7.parse(build_ack(header, AckCode.AE, text=NASTY, error_code="parse_error"))
    msa = parsed.segment("MSA")
    assert str(msa[1]) == "AE"
    assert str(msa[2]) == "MSG-42"
    assert parsed.unescape(str(msa[3])) == NASTY
    assert str(parsed.segment("ERR")[5]) == "parse_error"


def test_hl7apy_parses_the_ack(header: Header) -> None:
    parsed = parse_message(build_ack(header, AckCode.AR, text="rejected", error_code="x"))
    assert parsed.msh.msh_9.value == "ACK^R01^ACK"
    assert parsed.msa.msa_1.value == "AR"
    assert parsed.msa.msa_2.value == "MSG-42"
    assert parsed.msa.msa_3.value == "rejected"
    assert parsed.err.err_3.err_3_1.value == "207"


def test_nak_without_a_readable_msh_has_an_empty_msa_2() -> None:
    text = build_nak(fallback_header(), ParseError("message does not start with MSH"))
    ack = Message(text)
    assert ack.separators == DEFAULT
    assert ack.get("MSA-1") == "AR"
    assert ack.get("MSA-2") == ""
    assert ack.get("MSH-9") == "ACK^^ACK"  # a well-formed type, even unknown
    assert parse_message(text).msa.msa_1.value == "AR"
    assert str(hl7.parse(text).segment("MSA")[1]) == "AR"


def test_ack_uses_the_message_own_separators() -> None:
    header = read_header("MSH$%~\\&$A$B$C$D$$$ADT%A01$X1$P$2.3")
    text = build_ack(header, AckCode.AE, text="a$b%c")
    assert text.startswith("MSH$%~\\&$C$D$A$B$")
    ack = Message(text)
    assert ack.get("MSH-9.2") == "A01"
    assert ack.get("MSA-3") == "a$b%c"


def test_ack_stays_well_under_4096_bytes(header: Header) -> None:
    reason = "|^~\\&" * 2000
    ack = build_ack(header, AckCode.AR, text=reason, error_code="invalid_message")
    assert len(ack.encode("utf-8")) < 2048
    assert Message(ack).get("ERR-8") == reason[:200]
    assert Message(ack).get("MSA-3") == reason[:80]


def test_generated_control_ids_are_unique_and_fit_msh_10() -> None:
    ids = [new_control_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert max(len(i) for i in ids) <= 20


def test_build_segment_writes_components_and_drops_trailing_empty_fields() -> None:
    seps = Separators()
    assert build_segment("ZZZ", ["a|b", ["x", "y^z", ""], "", ""], seps) == "ZZZ|a\\F\\b|x^y\\S\\z"
    assert build_segment("MSH", ["APP"], seps) == "MSH|^~\\&|APP"


def test_read_header_refuses_text_without_msh() -> None:
    with pytest.raises(ParseError):
        read_header("PID|1||123")
    with pytest.raises(ParseError):
        read_header("")


def test_read_header_reads_only_the_first_line_whatever_the_newline() -> None:
    for newline in ("\r", "\n", "\r\n"):
        header = read_header("\n" + ORIGINAL.replace("\r", newline))
        assert header.control_id == "MSG-42"
        assert header.charset == "UNICODE UTF-8"
        assert header.message_type == "ORU"


@pytest.mark.parametrize(
    ("msh15", "msh16", "code", "expected"),
    [
        ("", "", AckCode.AA, True),  # original mode always answers
        ("", "", AckCode.AE, True),
        ("AL", "NE", AckCode.CA, True),
        ("AL", "NE", AckCode.AA, False),
        ("NE", "AL", AckCode.CA, False),
        ("NE", "AL", AckCode.AE, True),
        ("ER", "", AckCode.CA, False),
        ("ER", "", AckCode.CR, True),
        ("SU", "", AckCode.CA, True),
        ("SU", "", AckCode.CE, False),
        ("AL", "ER", AckCode.AA, False),
        ("AL", "ER", AckCode.AE, True),
        ("AL", "SU", AckCode.AA, True),
        ("NE", "", AckCode.AA, True),  # enhanced mode, MSH-16 empty: counts as AL
    ],
)
def test_enhanced_mode_follows_msh_15_and_msh_16(
    msh15: str, msh16: str, code: AckCode, expected: bool
) -> None:
    header = Header(accept_ack_type=msh15, app_ack_type=msh16)
    assert wants_ack(header, code) is expected


def test_msh_15_and_16_are_read_from_the_header() -> None:
    fields = ORIGINAL.split("|")
    fields[14], fields[15] = "al", "ER"
    header = read_header("|".join(fields))
    assert (header.accept_ack_type, header.app_ack_type) == ("AL", "ER")


@pytest.mark.parametrize(
    ("enhanced", "ok", "reject", "expected"),
    [
        (True, True, False, AckCode.CA),
        (True, False, False, AckCode.CE),
        (True, False, True, AckCode.CR),
        (False, True, False, AckCode.AA),
        (False, False, False, AckCode.AE),
        (False, False, True, AckCode.AR),
    ],
)
def test_commit_code_picks_commit_or_application_codes(
    enhanced: bool, ok: bool, reject: bool, expected: AckCode
) -> None:
    assert commit_code(enhanced, ok, reject) is expected
