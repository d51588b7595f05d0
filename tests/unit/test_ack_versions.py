"""Issue 16, items 3, 4, 7 and 8: the shape of each HL7 version, a well-formed type when none
can be read, batches answered with their own header, NAKs of undecodable bytes that echo them,
and reasons free of separators; ``default_charset`` checked when channels load."""

from __future__ import annotations

import pytest

from engine.channels.loader import ConfigError, parse_channels
from engine.hl7v2.ack import AckCode, build_ack
from engine.hl7v2.msh import read_header
from engine.hl7v2.reader import Message
from engine.intake.rules import MessageRules
from engine.journal.records import Appended


def ack_for(version: str, code: AckCode = AckCode.AR, msh9: str = "ADT^A01^ADT_A01") -> Message:
    header = read_header(f"MSH|^~\\&|LAB|CHU|ENG|CHU|20240101||{msh9}|C1|P|{version}")
    return Message(build_ack(header, code, text="refused", error_code="unsupported_message_type"))


def answer(intake: MessageRules, payload: bytes) -> bytes:
    prepared = intake.prepare(payload, "127.0.0.1:1")
    row = prepared.row
    stored = Appended(1, False, row.ack_code, row.error_code, row.error_reason)
    ack = intake.ack(prepared, stored, None)
    assert ack is not None
    return ack


@pytest.mark.parametrize("version", ["2.7", "2.7.1", "2.8", "2.8.2"])
def test_from_v2_7_the_text_is_in_err_8_and_msa_3_is_gone(version: str) -> None:
    ack = ack_for(version)
    assert len(ack.segment("MSA") or ()) == 2
    assert ack.get("ERR-8") == "refused"
    assert ack.get("ERR-3.1") == "200"


@pytest.mark.parametrize("version", ["2.3.1", "2.4"])
def test_up_to_v2_4_the_error_is_in_err_1(version: str) -> None:
    ack = ack_for(version)
    assert ack.get("MSA-3") == "refused"
    assert ack.segment("ERR") is not None and len(ack.segment("ERR") or ()) == 1
    assert ack.get("ERR-1.4.1") == "200"  # CM_ELD: the code is the fourth component (a CE)
    assert ack.get("ERR-1.4.3") == "HL70357"


def test_v2_5_keeps_msa_3_and_the_v2_5_err_layout() -> None:
    ack = ack_for("2.5")
    assert ack.get("MSA-3") == "refused"
    assert (ack.get("ERR-1"), ack.get("ERR-3.1"), ack.get("ERR-8")) == ("", "200", "refused")


def test_a_v2_3_ack_has_a_two_component_message_type() -> None:
    assert ack_for("2.3", msh9="ADT^A01").get("MSH-9") == "ACK^A01"
    assert ack_for("2.5", msh9="ADT^A01").get("MSH-9") == "ACK^A01^ACK"


def test_a_pam_fr_version_is_echoed_whole() -> None:
    assert ack_for("2.5^FRA^2.11", AckCode.AA).get("MSH-12") == "2.5^FRA^2.11"


def test_an_unreadable_type_gets_a_well_formed_ack_type() -> None:
    assert ack_for("2.5", msh9="").get("MSH-9") == "ACK^^ACK"


def test_a_batch_is_answered_with_its_own_header_fields() -> None:
    batch = (
        b"FHS|^~\\&|LABAPP|LABFAC|ENG|HOSP|20240101||||F42\r"
        b"BHS|^~\\&|LABAPP|LABFAC|ENG|HOSP|20240101||||B7\r"
        b"MSH|^~\\&|LABAPP|LABFAC|ENG|HOSP|20240101||ADT^A04^ADT_A01|M1|P|2.5\rEVN|A04\r"
        b"BTS|1\rFTS|1\r"
    )
    ack = Message(answer(MessageRules("lab", ("*",), "UNICODE UTF-8"), batch).decode())
    assert (ack.get("MSA-1"), ack.get("MSA-2")) == ("AR", "F42")  # FHS-11
    assert (ack.get("MSH-5"), ack.get("MSH-6")) == ("LABAPP", "LABFAC")
    assert (ack.get("MSH-3"), ack.get("MSH-4")) == ("ENG", "HOSP")
    assert ack.get("MSH-12") == "2.5"  # the version of its messages


def test_the_nak_of_undecodable_bytes_echoes_their_header_bytes_and_says_its_charset() -> None:
    payload = b"MSH|^~\\&|ELAB\x963|CHU-\xc9vry|ENG|CHU|20240101||ORU^R01|C\xe97|P|2.5\rPID|1"
    ack = answer(MessageRules("lab", ("*",), "UNICODE UTF-8"), payload)
    assert b"|ELAB\x963|CHU-\xc9vry|" in ack  # MSH-5/6 as they came, not "CHU-?vry"
    msg = Message(ack.decode("latin-1"))
    assert msg.get("MSA-2") == "C\xe97"
    assert msg.get("MSH-18") == "8859/1"
    assert "?" not in msg.msh.text


def test_an_unsupported_declared_charset_is_answered_in_ascii_and_says_so() -> None:
    payload = b"MSH|^~\\&|LAB|CHU|ENG|CHU|20240101||ORU^R01|C8|P|2.5||||||UNICODE UTF-16\rPID|1"
    msg = Message(answer(MessageRules("lab", ("*",), "UNICODE UTF-8"), payload).decode("ascii"))
    assert (msg.get("MSA-1"), msg.get("MSA-2"), msg.get("MSH-18")) == ("AR", "C8", "ASCII")


def test_a_reason_names_the_refused_type_without_separators() -> None:
    payload = b"MSH|^~\\&|LAB|CHU|ENG|CHU|20240101||SIU^S12|C9|P|2.5\rSCH|1"
    msg = Message(answer(MessageRules("lab", ("ADT^*",), "UNICODE UTF-8"), payload).decode())
    assert "SIU S12" in msg.get("MSA-3")
    assert "\\S\\" not in msg.segment("MSA").text  # type: ignore[union-attr]


def test_a_reused_control_id_is_reported_as_duplicate_key_identifier() -> None:
    header = read_header("MSH|^~\\&|LAB|CHU|ENG|CHU|20240101||ORU^R01|C10|P|2.5")
    ack = Message(build_ack(header, AckCode.AR, text="reused", error_code="control_id_reused"))
    assert (ack.get("ERR-3.1"), ack.get("ERR-3.2")) == ("205", "Duplicate key identifier")


@pytest.mark.parametrize(
    "source",
    [
        "{type: mllp, port: 2575, default_charset: bogus}",
        "{type: directory, path: /tmp/in, payload: hl7v2, default_charset: bogus}",
        "{type: amqp, queue: q, default_charset: UTF-16}",
    ],
)
def test_an_unknown_default_charset_is_refused_when_channels_load(source: str) -> None:
    text = f"""
channels:
  - name: a
    source: {source}
    accept: ["*"]
    destinations: {{f: {{type: file, directory: /tmp/x}}}}
"""
    with pytest.raises(ConfigError, match="default_charset"):
        parse_channels(text)
