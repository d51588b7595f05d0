"""Intake's cheap look at a CDA (engine.cda.screen, issue 11): what could hurt the engine is
refused before the ACK (DOCTYPE and entities, oversize, too deep, not Base64, not XML, another
root); the rest of the document is not parsed at intake, so a document broken past its header
is accepted here and refused by the pipeline (tests/integration/test_documents.py)."""

from __future__ import annotations

import base64

import pytest

from engine.cda.safexml import MAX_DEPTH
from engine.cda.screen import screen_document
from engine.errors import DocumentError
from engine.hl7v2.ack import AckCode
from engine.intake.offload import Offload
from engine.intake.prepared import Prepared
from engine.intake.rules import DocumentRules, MessageRules
from engine.journal.message_tables import State
from tests.sample_files import CDA_SAMPLES

TSH = (CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes()
DOC_ID = "1.2.250.1.213.1.1.1.55.2024.9.1"
HEAD = b'<?xml version="1.0"?>\n'
CDA_OPEN = b'<ClinicalDocument xmlns="urn:hl7-org:v3">'
ENTITY = HEAD + b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n' + CDA_OPEN
ENTITY += b"<title>&e;</title></ClinicalDocument>"
DOCTYPE = HEAD + b'<!DOCTYPE ClinicalDocument SYSTEM "CDA.dtd">\n' + TSH[len(HEAD) :]
#: Nested one level past the limit inside the header (the title), where intake reads.
TOO_DEEP = TSH.replace(b"</title>", b"</title>" + b"<x>" * MAX_DEPTH + b"</x>" * MAX_DEPTH, 1)
#: Not well-formed in the body (a section end tag misspelt), well past the header.
BROKEN_BODY = TSH.replace(b"</section>", b"</sectio>", 1)
BROKEN_HEADER = TSH.replace(b"</title>", b"</titl>", 1)


def oru(data: str) -> bytes:
    """An ORU^R01 carrying ``data`` as its OBX-5.5 (Base64 text) in OBX 1."""
    return "\r".join(
        [
            "MSH|^~\\&|LAB|CHU-X|DPI|CHU-X|20240306111154||ORU^R01^ORU_R01|C1|P|2.5",
            "PID|1||IPP1^^^CHU-X&1.2.3&ISO^PI||NOM^PRENOM",
            "OBR|1|P1|F1|11502-2^CR d'examens biologiques^LN",
            f"OBX|1|ED|11502-2^CR^LN||^text^XML^Base64^{data}||||||F",
        ]
    ).encode()


def carried(cda: bytes) -> Prepared:
    return MessageRules("labs", ("ORU^R01",), "UNICODE UTF-8").prepare(
        oru(base64.b64encode(cda).decode())
    )


def refused(prepared: Prepared) -> str:
    """The intake refusal's reason, checking that it is a kept dead letter answered AR."""
    row = prepared.row
    assert (row.state, row.ack_code, row.error_stage) == (
        State.DEAD_LETTERED,
        AckCode.AR,
        "intake",
    )
    assert row.error_code == "invalid_document"
    return str(row.error_reason)


def test_a_carried_cda_with_a_doctype_is_refused_at_intake_with_its_line() -> None:
    reason = refused(carried(DOCTYPE))
    assert reason == "the CDA of OBX 1: a DOCTYPE is not allowed in a CDA document (line 2)"


def test_a_carried_cda_declaring_an_entity_is_refused_at_intake() -> None:
    assert "a DOCTYPE is not allowed" in refused(carried(ENTITY))


def test_a_carried_cda_nested_too_deep_is_refused_at_intake() -> None:
    reason = refused(carried(TOO_DEEP))
    assert f"nested {MAX_DEPTH + 1} deep exceed the limit of {MAX_DEPTH}" in reason


def test_a_carried_cda_past_libxml2s_own_depth_cap_is_refused_at_intake() -> None:
    deep = CDA_OPEN + b"<x>" * 300 + b"</x>" * 300 + b"</ClinicalDocument>"
    with pytest.raises(DocumentError, match="deep exceed the limit"):
        screen_document(deep, max_depth=300)


def test_a_carried_cda_that_is_not_base64_is_refused_at_intake() -> None:
    assert refused(carried_text("QUJDR")).endswith("OBX-5.5 is not valid Base64")


def test_a_bad_base64_character_past_the_part_intake_reads_is_still_refused() -> None:
    # No padding, then one character more: no decoder makes bytes of it.
    text = base64.b64encode(TSH + b"\n" * (-len(TSH) % 3)).decode()
    assert refused(carried_text(text + "A")).endswith("OBX-5.5 is not valid Base64")


def test_base64_with_line_breaks_is_accepted_as_the_pipeline_decodes_it() -> None:
    text = base64.encodebytes(TSH).decode().replace("\n", " ")
    assert carried_text(text).error is None


def test_a_carried_payload_that_is_not_xml_is_refused_at_intake() -> None:
    reason = refused(carried(b"MSH|^~\\&|not a document"))
    assert reason == "the CDA of OBX 1: the payload is not XML (line 1)"


def test_a_carried_xml_of_another_kind_is_refused_at_intake() -> None:
    reason = refused(carried(b"<html><body/></html>"))
    assert reason == "the CDA of OBX 1: the XML root element is 'html', not a CDA ClinicalDocument"


def test_an_oversized_document_is_refused_before_it_is_read() -> None:
    with pytest.raises(DocumentError, match="exceeds the 1,000-byte limit"):
        screen_document(TSH, max_bytes=1000)


def test_a_carried_cda_broken_in_its_body_passes_intake_for_the_pipeline_to_refuse() -> None:
    prepared = carried(BROKEN_BODY)
    assert prepared.error is None and prepared.row.ack_code == AckCode.AA


def test_intake_reads_the_header_only_not_the_body() -> None:
    root = screen_document(TSH)
    names = [child.tag.rpartition("}")[2] for child in root]
    assert names[-1] == "recordTarget" and "component" not in names


def documents() -> DocumentRules:
    return DocumentRules("docs", ("CDA^*",), "UNICODE UTF-8")


def test_a_document_alone_broken_in_its_body_is_accepted_with_its_id_and_patient() -> None:
    prepared = documents().prepare(BROKEN_BODY)
    assert prepared.error is None
    assert prepared.header.control_id == DOC_ID
    assert prepared.row.trigger == "11502-2"
    assert prepared.row.patient_key == "1234567890121^1.2.3.4.567.8.9.10"


def test_a_document_alone_broken_before_its_id_is_known_is_refused_at_intake() -> None:
    reason = refused(documents().prepare(BROKEN_HEADER))
    assert reason == "the CDA header is not well-formed XML (line 45)"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (DOCTYPE, "a DOCTYPE is not allowed in a CDA document (line 2)"),
        (ENTITY, "a DOCTYPE is not allowed in a CDA document (line 2)"),
        (TOO_DEEP, f"elements nested {MAX_DEPTH + 1} deep exceed the limit of {MAX_DEPTH}"),
        (b"not xml at all", "the payload is not XML (line 1)"),
        (b"<html/>", "the XML root element is 'html', not a CDA ClinicalDocument"),
    ],
)
def test_a_document_alone_that_could_hurt_the_engine_is_refused_at_intake(
    payload: bytes, reason: str
) -> None:
    assert refused(documents().prepare(payload)) == reason


def carried_text(text: str) -> Prepared:
    return MessageRules("labs", ("ORU^R01",), "UNICODE UTF-8").prepare(oru(text))


def test_a_document_alone_up_to_a_megabyte_is_screened_on_the_loop_not_in_a_thread() -> None:
    """Screening costs the same whatever the size: no thread hand-off for a document alone,
    while an HL7 message of the same size (whose reading grows with it) still goes to one."""
    offload = Offload()
    payload = TSH + b" " * (900 * 1024 - len(TSH))
    assert offload.inline(payload, None, documents())
    assert not offload.inline(payload, None, MessageRules("labs", ("*",), "UNICODE UTF-8"))
    assert not offload.inline(payload + b" " * 200 * 1024, None, documents())


def test_a_carried_cda_with_a_non_ascii_character_in_its_base64_is_refused_at_intake() -> None:
    text = base64.b64encode(TSH).decode()
    assert refused(carried_text(text[:-8] + "é" + text[-8:])).endswith("not valid Base64")
