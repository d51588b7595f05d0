"""The header metadata of CDA R2 documents (engine.cda.header, DOMAIN.md §4).

Expected values are copied by hand from the sample files (their XML, or the CDA decoded from
the base64 OBX of the ANS MDM messages), not produced by the code. Inline documents cover
the rules the samples do not exercise.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from lxml import etree

from engine.cda.header import DocumentHeader, read_header
from engine.errors import ParseError
from tests.sample_files import CDA_COPIES, CDA_SAMPLES, CDA_SHARED, SHARED

CDA_FILES = sorted(CDA_SAMPLES.glob("*.xml"))
#: The samples tests/ keeps a copy of, so the exact-value tests run without ../shared/.
VENDORED = (
    "BIO-CR-BIO_2024.01_TSH_1.xml",
    "CNAM-HR_2021.01.xml",
    "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",
)
FR_ANS = SHARED / "fr-ans"

HL7_FRANCE = "2.16.840.1.113883.2.8.2.1"
CI_SIS = "1.2.250.1.213.1.1.1.1"
LOINC = "2.16.840.1.113883.6.1"
RPPS = "1.2.250.1.71.4.2.1"
#: The radiology report (CR d'imagerie, N1) the three ANS MDM examples carry in base64.
RADIO = "1.2.250.1.71.4.2.2.120456789.7102400008"


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def header_of(name: str) -> DocumentHeader:
    """The header of a CI-SIS sample; skipped when it is only in the absent shared corpus."""
    path = CDA_SAMPLES / name
    if not path.is_file():
        pytest.skip(f"{name} is not vendored and the shared CDA samples are not at {CDA_SHARED}")
    return read_header(parse(path.read_bytes()))


def embedded_header(message: str) -> DocumentHeader:
    """The header of the CDA an ANS message carries base64 in its OBX of type ED.

    OBX-5 is an ED: source^type^subtype^encoding^data. The padding is restored because the
    delete example's base64 lacks its final "=".
    """
    path = FR_ANS / message
    if not path.is_file():
        pytest.skip(f"the shared HL7 v2 samples are not at {SHARED}")
    for segment in path.read_bytes().split(b"\r"):
        fields = segment.split(b"|")
        if fields[0] == b"OBX" and len(fields) > 5 and fields[2] == b"ED":
            data = fields[5].split(b"^")
            if len(data) > 4 and data[2] == b"XML":
                padded = data[4] + b"=" * (-len(data[4]) % 4)
                return read_header(parse(base64.b64decode(padded)))
    raise AssertionError(f"{message} carries no XML document")


def cda(header: str) -> etree._Element:
    """A ClinicalDocument made of ``header`` (its children), parsed."""
    return parse(f'<ClinicalDocument xmlns="urn:hl7-org:v3">{header}</ClinicalDocument>'.encode())


# --- every sample ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", CDA_FILES, ids=lambda p: p.name)
def test_every_sample_has_an_id_a_type_a_time_a_confidentiality_and_a_level(path: Path) -> None:
    header = read_header(parse(path.read_bytes()))

    assert header.document_id
    assert header.type_code
    assert header.effective_time
    assert header.confidentiality in {"N", "R", "V"}
    assert header.level in {"N1", "N3"}
    assert {HL7_FRANCE, CI_SIS} <= set(header.template_ids)  # DOMAIN.md §4


@pytest.mark.parametrize("name", VENDORED)
def test_vendored_samples_are_identical_to_the_shared_ones(name: str) -> None:
    if not CDA_SHARED.is_dir():
        pytest.skip(f"shared CDA samples not found at {CDA_SHARED}")
    assert (CDA_COPIES / name).read_bytes() == (CDA_SHARED / name).read_bytes()


# --- exact headers of the samples ------------------------------------------------------------


def test_lab_report_header_is_read_as_the_file_writes_it() -> None:
    assert header_of("BIO-CR-BIO_2024.01_TSH_1.xml") == DocumentHeader(
        document_id="1.2.250.1.213.1.1.1.55.2024.9.1",
        set_id="1.2.250.1.213.1.1.1.55.2024.9",
        version=1,
        type_code="11502-2",
        type_system=LOINC,
        type_label="CR d'examens biologiques",
        title="Compte rendu d'examens biologiques",
        effective_time="20210401171000+0100",
        confidentiality="N",
        author_id=f"{RPPS}^801234534765",
        author_name="Marcel CAMPARINI",
        facility="Laboratoire des charmes",
        service_start="20210104092200+0100",
        service_end="20210104160500+0100",
        replaces="",
        template_ids=(HL7_FRANCE, CI_SIS, "1.3.6.1.4.1.19376.1.3.3", "1.2.250.1.213.1.1.1.55"),
        level="N3",
    )


def test_reimbursement_history_has_a_device_author_and_a_service_period() -> None:
    # The author is the Assurance Maladie's system (assignedAuthoringDevice): no person name,
    # and its "RPPS" id carries a structure number with an OID suffix. The body's entries
    # have authors with names of their own, which must not leak into the header.
    assert header_of("CNAM-HR_2021.01.xml") == DocumentHeader(
        document_id="1.2.250.1.213.1.1.1.36.2021.1.1",
        set_id="1.2.250.1.213.1.1.1.36.2021.1",
        version=1,
        type_code="REMB",
        type_system="1.2.250.1.213.1.1.4.12",
        type_label="Données de remboursement",
        title="Données de remboursement",
        effective_time="20190701164900+0100",
        confidentiality="N",
        author_id=f"{RPPS}^518003502400041/1.2.250.1.215.1.2",
        author_name="",
        facility="Assurance Maladie",
        service_start="20190101154500+0100",
        service_end="20190701154500+0100",
        replaces="",
        template_ids=(HL7_FRANCE, CI_SIS, "1.2.250.1.213.1.1.1.36"),
        level="N3",
    )


def test_medical_summary_has_an_open_ended_service_period() -> None:
    assert header_of("VSM_1.4_2022.01.xml") == DocumentHeader(
        document_id="1.2.250.1.213.1.1.1.13.2022.1.1",
        set_id="1.2.250.1.213.1.1.1.13.2022.1",
        version=1,
        type_code="SYNTH",
        type_system="1.2.250.1.213.1.1.4.12",
        type_label="Synthèse",
        title="Synthèse Médicale",
        effective_time="20200312111700+0100",
        confidentiality="N",
        author_id=f"{RPPS}^801234567897",
        author_name="Stéphane MEDIONI",
        facility="Centre de soins le Belvédère",
        service_start="20200312111700+0100",
        service_end="",
        replaces="",
        template_ids=(HL7_FRANCE, CI_SIS, "1.2.250.1.213.1.1.1.13"),
        level="N3",
    )


def test_level_1_imaging_report_replaces_a_document_named_by_a_uuid() -> None:
    # Its CR-IMG templateId (1.2.250.1.213.1.1.1.45) is commented out in the file: only the
    # IHE XDS-SD one is declared. Of its four documentationOf, the first three give a period.
    assert header_of("IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml") == DocumentHeader(
        document_id="1.2.250.1.213.1.1.1.45.2024.2.1",
        set_id="1.2.250.1.213.1.1.1.45.2024.2",
        version=2,
        type_code="18748-4",
        type_system=LOINC,
        type_label="CR d’imagerie médicale",
        title="CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection",
        effective_time="20210108111700+0100",
        confidentiality="N",
        author_id=f"{RPPS}^801234560801",
        author_name="Jacques BIDEAULT",
        facility="Centre de radiologie Ambroise",
        service_start="20210108102500+0100",
        service_end="20210108111700+0100",
        replaces="90E1C8EC-F951-4B26-A305-A34848818DD6",
        template_ids=(HL7_FRANCE, CI_SIS, "1.3.6.1.4.1.19376.1.2.20"),
        level="N1",
    )


def test_service_period_comes_from_the_first_documentation_of() -> None:
    # Two documentationOf, each with a low only: 15:45 then 15:35.
    header = header_of("TLM-DA_2022.01_TCG_anamnese-non-structuree.xml")

    assert (header.service_start, header.service_end) == ("20210327154500+0100", "")


# --- the CDAs inside the ANS MDM messages ----------------------------------------------------


def test_initial_mdm_carries_version_1_without_set_id_nor_replaced_document() -> None:
    # The family comes first in the XML (family qualifier="SP" Eric, given Thomas); the
    # document was written in 2005 for an exam of 2023, as the file says.
    assert embedded_header("mdm_t02_cda_base64.hl7") == DocumentHeader(
        document_id=f"{RADIO}1",
        set_id="",
        version=1,
        type_code="18748-4",
        type_system=LOINC,
        type_label="CR d'imagerie médicale",
        title="Radio de hanche",
        effective_time="20050411103328",
        confidentiality="N",
        author_id=f"{RPPS}^801234564895",
        author_name="Thomas Eric",
        facility="Organisation-Y",
        service_start="20230227102827+0200",
        service_end="20230227102827+0200",
        replaces="",
        template_ids=(HL7_FRANCE, CI_SIS, "1.3.6.1.4.1.19376.1.2.20"),
        level="N1",
    )


@pytest.mark.parametrize("message", ["mdm_t10_replace_base64.hl7", "mdm_t04_delete_base64.hl7"])
def test_replace_and_delete_mdm_carry_version_2_replacing_version_1(message: str) -> None:
    header = embedded_header(message)

    assert (header.document_id, header.version) == (f"{RADIO}2", 2)
    assert header.replaces == f"{RADIO}1"
    assert header.set_id == ""
    assert header.level == "N1"


# --- rules on inline documents ---------------------------------------------------------------


def test_an_id_is_its_root_alone_without_extension_and_empty_without_root() -> None:
    header = read_header(cda('<id root="1.2.3"/><setId extension="42"/>'))

    assert header.document_id == "1.2.3"
    assert header.set_id == ""


def test_an_id_with_an_extension_is_root_caret_extension() -> None:
    header = read_header(cda('<id root=" 1.2.3 " extension="A-1"/>'))

    assert header.document_id == "1.2.3^A-1"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("", 1),
        ('<versionNumber value="3"/>', 3),
        ('<versionNumber value=" 7 "/>', 7),
        ('<versionNumber value="two"/>', 1),
        ('<versionNumber value="0"/>', 1),
        ('<versionNumber value="-2"/>', 1),
        ('<versionNumber value="1.5"/>', 1),
        ('<versionNumber nullFlavor="NI"/>', 1),
    ],
)
def test_version_is_a_positive_integer_or_1(version: str, expected: int) -> None:
    assert read_header(cda(version)).version == expected


def test_author_is_the_first_one_with_given_names_before_the_family() -> None:
    document = cda(
        "<author><assignedAuthor>"
        '<id root="1.2.250.1.71.4.2.1" extension="10001"/><id root="9.9" extension="2"/>'
        "<assignedPerson><name><prefix>Dr</prefix><family> de la Tour </family>"
        "<given>Jean </given><given> Marie</given><suffix>MD</suffix></name>"
        "<name><given>Other</given></name></assignedPerson>"
        "</assignedAuthor></author>"
        '<author><assignedAuthor><id root="8.8" extension="2"/><assignedPerson><name>'
        "<given>Second</given><family>AUTHOR</family></name></assignedPerson>"
        "</assignedAuthor></author>"
    )

    header = read_header(document)

    assert header.author_id == "1.2.250.1.71.4.2.1^10001"
    assert header.author_name == "Jean Marie de la Tour"


def test_a_device_author_has_an_id_but_no_name() -> None:
    document = cda(
        '<author><assignedAuthor><id root="1.2" extension="X"/>'
        "<assignedAuthoringDevice><softwareName>SGL</softwareName></assignedAuthoringDevice>"
        "</assignedAuthor></author>"
    )

    header = read_header(document)

    assert (header.author_id, header.author_name) == ("1.2^X", "")


def test_only_a_replacement_relation_gives_the_replaced_document() -> None:
    appended = cda(
        '<relatedDocument typeCode="APND"><parentDocument><id root="1.1"/></parentDocument>'
        "</relatedDocument>"
    )
    replacing = cda(
        '<relatedDocument typeCode="XFRM"><parentDocument><id root="1.1"/></parentDocument>'
        '</relatedDocument><relatedDocument typeCode="RPLC"><parentDocument>'
        '<id root="1.2" extension="v1"/></parentDocument></relatedDocument>'
    )

    assert read_header(appended).replaces == ""
    assert read_header(replacing).replaces == "1.2^v1"


def test_service_period_skips_a_documentation_of_without_effective_time() -> None:
    document = cda(
        "<documentationOf><serviceEvent/></documentationOf>"
        "<documentationOf><serviceEvent><effectiveTime>"
        '<low value="20240101"/><high nullFlavor="UNK"/>'
        "</effectiveTime></serviceEvent></documentationOf>"
    )

    header = read_header(document)

    assert (header.service_start, header.service_end) == ("20240101", "")


def test_template_ids_keep_document_order_and_ignore_nested_ones() -> None:
    document = cda(
        '<templateId root="3.3"/><templateId root="1.1" extension="2024.01"/>'
        '<component><structuredBody><templateId root="9.9"/></structuredBody></component>'
    )

    header = read_header(document)

    assert header.template_ids == ("3.3", "1.1")
    assert header.level == "N3"


def test_a_document_with_an_unstructured_body_is_level_1() -> None:
    document = cda(
        '<component><nonXMLBody><text mediaType="text/plain">x</text></nonXMLBody></component>'
    )

    assert read_header(document).level == "N1"


def test_an_empty_clinical_document_gives_empty_values_rather_than_an_error() -> None:
    assert read_header(cda("")) == DocumentHeader(
        document_id="",
        set_id="",
        version=1,
        type_code="",
        type_system="",
        type_label="",
        title="",
        effective_time="",
        confidentiality="",
        author_id="",
        author_name="",
        facility="",
        service_start="",
        service_end="",
        replaces="",
        template_ids=(),
        level="",
    )


def test_another_root_element_is_refused() -> None:
    with pytest.raises(ParseError):
        read_header(parse(b'<Bundle xmlns="http://hl7.org/fhir"/>'))


def test_a_clinical_document_outside_the_hl7_namespace_is_refused() -> None:
    with pytest.raises(ParseError):
        read_header(parse(b"<ClinicalDocument><id root='1.2'/></ClinicalDocument>"))
