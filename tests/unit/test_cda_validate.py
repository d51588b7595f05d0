"""Per-channel validation of CDA R2 documents (engine.cda.conformance): XSD and CI-SIS header rules.

The outcome expected of each CI-SIS sample was read from the file itself (its header, and the
elements from other namespaces in its body), not produced by the code. Inline documents, one
element per line, cover each CI-SIS rule with one element missing or wrong.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from engine.cda import conformance as validate_module
from engine.cda.conformance import Problem, cisis_header_problems, validate, xsd_errors
from engine.cda.safexml import parse_document
from tests.sample_files import CDA_SAMPLES, CDA_SHARED

LAB = "{urn:oid:1.3.6.1.4.1.19376.1.3.2}"  # IHE lab extension (lab:statusCode)
DICOM = "{urn:dicom-org:ps3-20}"  # DICOM extension (ps3-20:accessionNumber)
PHARM = "{urn:ihe:pharm:medication}"  # IHE pharmacy extension (pharm:formCode)


@dataclass(frozen=True)
class Expected:
    #: (line, rule) of each CI-SIS header problem.
    header: tuple[tuple[int, str], ...] = ()
    #: (line, element) of each error of the normative CDA schema: the French extensions it does
    #: not know. libxml2 reports the first unexpected element of a parent, not the ones after it.
    normative: tuple[tuple[int, str], ...] = ()


EXPECTED = {
    # The ANS lab reports put lab:statusCode in the specimen's procedure (IHE XD-LAB).
    "BIO-CR-BIO_2024.01_TSH_1.xml": Expected(normative=((357, f"{LAB}statusCode"),)),
    "BIO-CR-BIO_2024.01_TSH_2.xml": Expected(normative=((354, f"{LAB}statusCode"),)),
    "BIO-TROD_2024.01_COVID-19.xml": Expected(),
    "CNAM-HR_2021.01.xml": Expected(),
    "CNAM-HR_2021.01_sans-info.xml": Expected(),
    # An older radiology N1 without setId (versionNumber alone); the root is on line 1.
    "CR_Radio_CDAN1_v1.xml": Expected(
        header=((1, "cisis.version"),), normative=((115, f"{DICOM}accessionNumber"),)
    ),
    # Its INS (production INS-NIR OID 1.2.250.1.213.1.4.8) has a key that does not match.
    "CSE-MDE_2023.01.xml": Expected(header=((62, "cisis.record_target.ins"),)),
    "DOC_NON_STRUCTURE_CDA-R2-N1.xml": Expected(),
    # Two orders (inFulfillmentOf), each with its DICOM accession number.
    "IMG_CR_IMG_2024.01.xml": Expected(
        normative=((363, f"{DICOM}accessionNumber"), (373, f"{DICOM}accessionNumber"))
    ),
    "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml": Expected(
        normative=((357, f"{DICOM}accessionNumber"),)
    ),
    "LDL-EES_2022.01.xml": Expected(),
    "OBP-SCM_2024.01.xml": Expected(),
    "TLM-DA_2022.01_TCG_anamnese-non-structuree.xml": Expected(),
    "VAC-NOTE_2023.01.xml": Expected(),
    "VAC_2023.01.xml": Expected(),
    "VSM_1.4_2022.01.xml": Expected(),
    # Two prescribed products with pharm:formCode (IHE pharmacy).
    "eP-MED-DM_2022.01_PosoStruct.xml": Expected(
        normative=((743, f"{PHARM}formCode"), (1159, f"{PHARM}formCode"))
    ),
}


def sample(name: str) -> etree._Element:
    """A CI-SIS sample, parsed as the engine parses; skipped when it is not at hand."""
    path = CDA_SAMPLES / name
    if not path.is_file():
        pytest.skip(f"{name} is not vendored and the shared CDA samples are not at {CDA_SHARED}")
    return parse_document(path.read_bytes())


# --- every sample ----------------------------------------------------------------------------


def test_every_sample_at_hand_has_its_outcome_written_down() -> None:
    names = {path.name for path in CDA_SAMPLES.glob("*.xml")}

    assert names <= set(EXPECTED), f"write the expected outcome of {names - set(EXPECTED)}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_passes_the_ci_sis_header_rules_or_fails_as_read(name: str) -> None:
    problems = cisis_header_problems(sample(name))

    assert [(p.line, p.rule) for p in problems] == list(EXPECTED[name].header)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_french_extended_schema_accepts_every_sample(name: str) -> None:
    assert xsd_errors(sample(name), "cisis") == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_normative_schema_refuses_only_the_french_extensions_a_sample_uses(name: str) -> None:
    problems = xsd_errors(sample(name), "cda")

    assert [(p.line, p.rule) for p in problems] == [
        (line, "xsd") for line, _ in EXPECTED[name].normative
    ]
    for problem, (_, element) in zip(problems, EXPECTED[name].normative, strict=True):
        assert problem.message.startswith(f"element {element}: This element is not expected.")


def test_a_channel_asking_for_both_gets_the_problems_in_line_order() -> None:
    problems = validate(sample("CR_Radio_CDAN1_v1.xml"), "cda", cisis_header=True)

    assert [(p.line, p.rule) for p in problems] == [(1, "cisis.version"), (115, "xsd")]
    assert problems[0] == Problem(1, "cisis.version", "ClinicalDocument lacks setId")
    assert str(problems[0]) == "line 1: ClinicalDocument lacks setId [cisis.version]"


def test_a_channel_asking_for_nothing_gets_nothing() -> None:
    assert validate(sample("CR_Radio_CDAN1_v1.xml"), None, cisis_header=False) == []


# --- one rule at a time ----------------------------------------------------------------------

VALID = """\
<ClinicalDocument xmlns="urn:hl7-org:v3">
<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
<templateId root="2.16.840.1.113883.2.8.2.1"/>
<templateId root="1.2.250.1.213.1.1.1.1"/>
<id root="1.2.250.1.999.1" extension="DOC-1"/>
<code code="11502-2" codeSystem="2.16.840.1.113883.6.1"/>
<effectiveTime value="20240106113623+0100"/>
<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
<setId root="1.2.250.1.999.2"/>
<versionNumber value="1"/>
<recordTarget>
<patientRole>
<id root="1.2.250.1.213.1.4.10" extension="279035121518989"/>
<patient>
<name>
<family qualifier="BR">PAT-TROIS</family>
<given>DOMINIQUE</given>
</name>
<administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
<birthTime value="19790328"/>
</patient>
</patientRole>
</recordTarget>
<author>
<time value="20240106113623+0100"/>
<assignedAuthor>
<id root="1.2.250.1.71.4.2.1" extension="801234567890"/>
</assignedAuthor>
</author>
<custodian>
<assignedCustodian>
<representedCustodianOrganization>
<id root="1.2.250.1.71.4.2.2" extension="1234"/>
</representedCustodianOrganization>
</assignedCustodian>
</custodian>
<component>
<nonXMLBody>
<text mediaType="text/plain">compte rendu</text>
</nonXMLBody>
</component>
</ClinicalDocument>
"""


def line(fragment: str) -> int:
    """The line of VALID that holds ``fragment``."""
    return next(n for n, text in enumerate(VALID.splitlines(), 1) if fragment in text)


def changed(old: str, new: str) -> etree._Element:
    """VALID with ``old`` (a unique fragment) replaced, lines unchanged; parsed."""
    assert VALID.count(old) == 1, old
    return parse_document(VALID.replace(old, new).encode())


def test_the_inline_document_passes_both_schemas_and_the_header_rules() -> None:
    root = parse_document(VALID.encode())

    assert validate(root, "cda", cisis_header=True) == []
    assert validate(root, "cisis", cisis_header=True) == []


INS = '<id root="1.2.250.1.213.1.4.10" extension="279035121518989"/>'
CASES = {  # what is changed: (old, new, rule, the line of the problem: VALID's holding this)
    "no HL7 France templateId": (
        '<templateId root="2.16.840.1.113883.2.8.2.1"/>',
        "",
        "cisis.template_ids",
        "<Clinical",
    ),
    "no CI-SIS templateId": (
        '<templateId root="1.2.250.1.213.1.1.1.1"/>',
        "",
        "cisis.template_ids",
        "<Clinical",
    ),
    "no id": ('<id root="1.2.250.1.999.1" extension="DOC-1"/>', "", "cisis.id", "<Clinical"),
    "an id without root": ('<id root="1.2.250.1.999.1" ', "<id ", "cisis.id", "DOC-1"),
    "no setId": ('<setId root="1.2.250.1.999.2"/>', "", "cisis.version", "<Clinical"),
    "a setId without root": (
        '<setId root="1.2.250.1.999.2"/>',
        "<setId/>",
        "cisis.version",
        "<setId",
    ),
    "no versionNumber": ('<versionNumber value="1"/>', "", "cisis.version", "<Clinical"),
    "a versionNumber not an integer": (
        '<versionNumber value="1"/>',
        '<versionNumber value="1.0"/>',
        "cisis.version",
        "<version",
    ),
    "no code": (
        '<code code="11502-2" codeSystem="2.16.840.1.113883.6.1"/>',
        "",
        "cisis.code",
        "<Clin",
    ),
    "a code without codeSystem": (
        ' codeSystem="2.16.840.1.113883.6.1"',
        "",
        "cisis.code",
        '<code code="11502-2"',
    ),
    "no effectiveTime": (
        '<effectiveTime value="20240106113623+0100"/>',
        "",
        "cisis.effective_time",
        "<Clinical",
    ),
    "an effectiveTime without a full date": (
        '<effectiveTime value="20240106113623+0100"/>',
        '<effectiveTime value="202401"/>',
        "cisis.effective_time",
        "<effectiveTime",
    ),
    "a confidentialityCode outside N, R, V": (
        '<confidentialityCode code="N"',
        '<confidentialityCode code="U"',
        "cisis.confidentiality",
        "<confidentialityCode",
    ),
    "no author id": (
        '<id root="1.2.250.1.71.4.2.1" extension="801234567890"/>',
        "",
        "cisis.author",
        "<author>",
    ),
    "no representedCustodianOrganization": (
        '<representedCustodianOrganization>\n<id root="1.2.250.1.71.4.2.2" extension="1234"/>'
        "\n</representedCustodianOrganization>",
        "\n\n",
        "cisis.custodian",
        "<assignedCustodian>",
    ),
    "an INS with another OID": (
        INS,
        INS.replace("1.2.250.1.213.1.4.10", "1.2.250.1.999.3"),
        "cisis.record_target.ins",
        "<patientRole>",
    ),
    "a NIR used for billing, not an INS": (
        INS,
        INS.replace("1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.13"),
        "cisis.record_target.ins",
        "<patientRole>",
    ),
    "an INS whose key is wrong": (
        INS,
        INS.replace("89", "88"),
        "cisis.record_target.ins",
        "1.2.250.1.213.1.4.10",
    ),
    "a family name not qualified BR": (
        '<family qualifier="BR">',
        '<family qualifier="SP">',
        "cisis.record_target.traits",
        "<name>",
    ),
    "no given name": ("<given>DOMINIQUE</given>", "", "cisis.record_target.traits", "<name>"),
    "no administrativeGenderCode": (
        '<administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>',
        "",
        "cisis.record_target.traits",
        "<patient>",
    ),
    "a birthTime without value": (
        '<birthTime value="19790328"/>',
        '<birthTime nullFlavor="UNK"/>',
        "cisis.record_target.traits",
        "<birthTime",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_one_element_missing_or_wrong_gives_exactly_its_rule_on_its_line(case: str) -> None:
    old, new, rule, at = CASES[case]

    problems = cisis_header_problems(changed(old, new))

    assert [(p.line, p.rule) for p in problems] == [(line(at), rule)]


def test_schema_errors_and_header_problems_come_together_in_line_order() -> None:
    root = changed('<setId root="1.2.250.1.999.2"/>', "")
    root = changed_tree(root, 'value="19790328"', 'value="1979-03-28"')

    problems = validate(root, "cisis", cisis_header=True)

    assert [(p.line, p.rule) for p in problems] == [
        (1, "cisis.version"),
        (line("<birthTime"), "xsd"),
    ]


def test_a_birth_name_qualified_with_several_codes_including_br_counts() -> None:
    assert cisis_header_problems(changed('qualifier="BR"', 'qualifier="SP BR"')) == []


def test_no_record_target_is_one_problem_on_the_root() -> None:
    root = changed(VALID[VALID.index("<recordTarget>") : VALID.index("<author>")], "")

    assert [(p.line, p.rule) for p in cisis_header_problems(root)] == [(1, "cisis.record_target")]


def test_a_second_record_target_is_reported_where_it_starts() -> None:
    target = VALID[VALID.index("<recordTarget>") : VALID.index("<author>")]
    root = changed(target, target + target)

    problems = cisis_header_problems(root)

    assert [(p.line, p.rule) for p in problems] == [
        (line("</recordTarget>") + 1, "cisis.record_target")
    ]


def test_no_patient_misses_each_trait_on_the_patient_role_line() -> None:
    patient = VALID[VALID.index("<patient>") : VALID.index("</patientRole>")]
    root = changed(patient, "\n" * patient.count("\n"))

    problems = cisis_header_problems(root)

    assert [(p.line, p.rule) for p in problems] == [
        (line("<patientRole>"), "cisis.record_target.traits")
    ] * 4


def test_a_root_other_than_clinical_document_is_one_problem_and_an_xsd_error() -> None:
    root = parse_document(b'<?xml version="1.0"?>\n<Document xmlns="urn:hl7-org:v3"/>')

    assert [(p.line, p.rule) for p in cisis_header_problems(root)] == [(2, "cisis.root")]
    assert xsd_errors(root, "cisis") == [
        Problem(
            2,
            "xsd",
            "element Document: No matching global declaration available for the validation root.",
        )
    ]


# --- no patient data in messages ---------------------------------------------------------------

PATIENT_DATA = ("PAT-TROIS", "DOMINIQUE", "279035121518989", "19790328")


def test_xsd_messages_never_quote_what_the_document_holds() -> None:
    """The patient's name, INS and birth date, put where the schema refuses them, stay out."""
    root = changed(
        "<patientRole>\n" + INS,
        '<patientRole classCode="PAT-TROIS">PAT-TROIS\n'  # an enumerated attribute; text
        '<id root="DOMINIQUE" extension="279035121518989" x="PAT-TROIS"/>',  # a uid; unknown
    )
    root = changed_tree(
        root, '<birthTime value="19790328"/>', '<birthTime value="O\'PAT-TROIS 19790328"/>'
    )
    root = changed_tree(
        root, '<versionNumber value="1"/>', '<versionNumber value="279035121518989X"/>'
    )
    root = changed_tree(root, 'root="2.16.840.1.113883.1.3"', 'root="DOMINIQUE"')  # fixed value

    for schema in ("cda", "cisis"):
        problems = xsd_errors(root, schema)  # type: ignore[arg-type]
        messages = "\n".join(p.message for p in problems)
        assert len(problems) >= 6, messages
        for value in PATIENT_DATA:
            assert value not in messages, f"{schema} quotes {value}: {messages}"


def changed_tree(root: etree._Element, old: str, new: str) -> etree._Element:
    """``root`` serialized, ``old`` replaced, parsed again (lines unchanged)."""
    text = etree.tostring(root, encoding="unicode")
    assert text.count(old) == 1, old
    return parse_document(text.replace(old, new).encode())


def test_a_required_attribute_is_named_and_a_refused_value_described() -> None:
    root = changed('<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>', "<typeId/>")
    root = changed_tree(root, '<birthTime value="19790328"/>', '<birthTime value="1979-03-28"/>')

    messages = [(p.line, p.message) for p in xsd_errors(root, "cisis")]

    assert messages == [
        (2, "element typeId: the attribute root is required but missing"),
        (2, "element typeId: the attribute extension is required but missing"),
        (
            line("<birthTime"),
            "element birthTime, attribute value: the value does not match its datatype's pattern",
        ),
    ]


def test_header_messages_never_quote_what_the_document_holds() -> None:
    root = changed(INS, INS.replace("89", "88"))

    (problem,) = cisis_header_problems(root)
    assert not any(value[:8] in problem.message for value in PATIENT_DATA)


# --- loading -----------------------------------------------------------------------------------


def test_each_schema_is_compiled_once() -> None:
    assert validate_module._schema("cisis") is validate_module._schema("cisis")
    assert validate_module._schema("cda") is not validate_module._schema("cisis")


@pytest.mark.parametrize("location", ["http://example.invalid/b.xsd", "b.xsd"])
def test_a_schema_location_outside_the_shipped_files_fails_the_load(
    tmp_path: Path, location: str
) -> None:
    """libxml2 alone would skip an unreachable import with a warning and validate less."""
    (tmp_path / "b.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:b"/>'
    )
    xsd = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:a">'
        f'<xs:import namespace="urn:b" schemaLocation="{location}"/>'
        "</xs:schema>"
    )
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(validate_module._LocalOnly())
    tree = etree.fromstring(xsd.encode(), parser, base_url=str(tmp_path / "a.xsd"))

    with pytest.raises(etree.XMLSchemaParseError):
        etree.XMLSchema(tree)


def test_threads_validating_at_once_each_get_their_own_errors() -> None:
    good = parse_document(VALID.encode())
    bad = changed('<versionNumber value="1"/>', '<versionNumber value="x"/>')
    results: dict[int, list[int]] = {}

    def run(n: int) -> None:
        results[n] = [len(xsd_errors(good if n % 2 else bad, "cisis")) for _ in range(20)]

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {n: [0 if n % 2 else 1] * 20 for n in range(8)}
