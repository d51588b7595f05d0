"""Coded entries of level-3 CI-SIS documents (engine.cda.extract_*; DOMAIN.md §4-6).

Expected counts and values are copied by hand from the sample files' XML, not produced by the
code. Inline documents cover what the samples do not (batteries, coded results, narrative-only
labels, "no known" entries).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from engine.cda.extract_lab import LabResult, lab_results
from engine.cda.extract_remb import Reimbursement, reimbursements
from engine.cda.extract_summary import SummaryEntry, summary_entries
from tests.sample_files import CDA_COPIES, CDA_SAMPLES, CDA_SHARED

LOINC = "2.16.840.1.113883.6.1"
SNOMED = "2.16.840.1.113883.6.96"
CIM10 = "2.16.840.1.113883.6.3"
CIS = "1.2.250.1.213.2.3.1"
CIP = "1.2.250.1.215.200.1.1.1"  # JDV_BDM_CNAM-HR_CISIS, CIP codes
UCD = "1.2.250.1.215.200.1.1.2"
LPP = "1.2.250.1.215.200.2.1"
GHS = "1.2.250.1.215.200.3.1"
NGAP = "1.2.250.1.215.200.3.3"
CCAM_CNAM = "1.2.250.1.215.200.3.4"
NABM = "1.2.250.1.215.200.4.1"
MARIGNY = "Laure MARIGNY"

TSH_1 = "BIO-CR-BIO_2024.01_TSH_1.xml"
TSH_2 = "BIO-CR-BIO_2024.01_TSH_2.xml"
VSM = "VSM_1.4_2022.01.xml"
VAC = "VAC_2023.01.xml"
VAC_NOTE = "VAC-NOTE_2023.01.xml"
REMB = "CNAM-HR_2021.01.xml"
REMB_EMPTY = "CNAM-HR_2021.01_sans-info.xml"
#: Level-1 documents: a PDF (or other file) in nonXMLBody.
N1 = (
    "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",
    "DOC_NON_STRUCTURE_CDA-R2-N1.xml",
    "CR_Radio_CDAN1_v1.xml",
)
#: The samples this file made tests/ keep a copy of.
VENDORED = (TSH_2, VSM, VAC, VAC_NOTE, REMB_EMPTY)


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def sample(name: str) -> etree._Element:
    """A parsed CI-SIS sample; skipped when it is only in the absent shared corpus."""
    path = CDA_SAMPLES / name
    if not path.is_file():
        pytest.skip(f"{name} is not vendored and the shared CDA samples are not at {CDA_SHARED}")
    return parse(path.read_bytes())


def cda(body: str, header: str = "") -> etree._Element:
    """A ClinicalDocument with ``header`` children and a structured body of ``body`` sections."""
    return parse(
        '<ClinicalDocument xmlns="urn:hl7-org:v3"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"{header}<component><structuredBody>{body}</structuredBody></component>"
        "</ClinicalDocument>".encode()
    )


@pytest.mark.parametrize("name", VENDORED)
def test_vendored_samples_are_identical_to_the_shared_ones(name: str) -> None:
    if not CDA_SHARED.is_dir():
        pytest.skip(f"shared CDA samples not found at {CDA_SHARED}")
    assert (CDA_COPIES / name).read_bytes() == (CDA_SHARED / name).read_bytes()


@pytest.mark.parametrize("path", sorted(CDA_SAMPLES.glob("*.xml")), ids=lambda p: p.name)
def test_every_sample_can_be_read_by_every_extractor(path: Path) -> None:
    root = parse(path.read_bytes())

    assert isinstance(lab_results(root), list)
    assert isinstance(summary_entries(root), list)
    assert isinstance(reimbursements(root), list)


# --- lab results (CR-BIO) --------------------------------------------------------------------


def test_first_tsh_report_gives_its_two_results_as_written() -> None:
    # The report's third observation (the attached PDF's document type) is not a result.
    results = lab_results(sample(TSH_1))

    assert results == [
        LabResult(
            code="3016-3",
            code_system=LOINC,
            label="Thyréostimuline [Arbitraire/Volume] Sérum/Plasma ; Numérique",
            value="1.950",
            unit="m[IU]/L",
            value_type="PQ",
            reference_range="0.270-4.200 m[IU]/L",
            interpretation="N",
            observed_at="20140402145521+0200",
            status="completed",
            panel_code="",
            panel_label="",
        ),
        LabResult(
            code="3024-7",
            code_system=LOINC,
            label="Thyroxine libre [Masse/Volume] Sérum/Plasma ; Numérique",
            value="7.67",
            unit="pg/mL",
            value_type="PQ",
            reference_range="9.30-17.00 pg/mL",
            interpretation="L",
            observed_at="20140402145521+0200",
            status="completed",
            panel_code="",
            panel_label="",
        ),
    ]


def test_second_tsh_report_measures_tsh_on_a_blood_spot_with_its_own_range() -> None:
    results = lab_results(sample(TSH_2))

    assert len(results) == 2
    first, last = results
    assert (first.code, first.label) == (
        "29575-8",
        "Thyréostimuline [Arbitraire/Volume] Sang buvard ; Numérique",
    )
    assert (first.value, first.unit, first.reference_range) == (
        "1.950",
        "m[IU]/L",
        "0.290-4.800 m[IU]/L",
    )
    assert (last.code, last.value, last.unit, last.interpretation) == (
        "3024-7",
        "7.67",
        "pg/mL",
        "L",
    )


def test_rapid_test_report_gives_its_coded_result_by_its_label() -> None:
    # A TROD (rapid diagnostic test) uses the CR-BIO entries: one CD result, no range.
    assert lab_results(sample("BIO-TROD_2024.01_COVID-19.xml")) == [
        LabResult(
            code="94558-4",
            code_system=LOINC,
            label="Coronavirus SARS-CoV-2 Ag [Présence/Seuil] Respiratoire ; Qualitatif ;"
            " Immunoanalyse rapide",
            value="négatif",
            unit="",
            value_type="CD",
            reference_range="",
            interpretation="",
            observed_at="20240106113623+0100",
            status="completed",
            panel_code="",
            panel_label="",
        )
    ]


LAB_SECTION = """
<section>
  <code code="18719-5" codeSystem="2.16.840.1.113883.6.1"/>
  <text><content ID="r1">Créatinine</content><content ID="rng">négatif</content></text>
  <entry typeCode="DRIV">
    <templateId root="1.3.6.1.4.1.19376.1.3.1"/>
    <act classCode="ACT" moodCode="EVN">
      <code code="18719-5" codeSystem="2.16.840.1.113883.6.1"/>
      <entryRelationship typeCode="COMP">
        <organizer classCode="BATTERY" moodCode="EVN">
          <code code="24362-6" displayName="Ionogramme" codeSystem="2.16.840.1.113883.6.1"/>
          <component><observation classCode="OBS" moodCode="EVN">
            <code code="2951-2" codeSystem="2.16.840.1.113883.6.1">
              <originalText><reference value="#r1"/></originalText>
            </code>
            <statusCode code="completed"/>
            <effectiveTime><low value="20240105"/></effectiveTime>
            <value xsi:type="PQ" value="140" unit="mmol/L"/>
            <referenceRange><observationRange>
              <value xsi:type="IVL_PQ"><high value="145" unit="mmol/L"/></value>
            </observationRange></referenceRange>
          </observation></component>
        </organizer>
      </entryRelationship>
      <entryRelationship typeCode="COMP">
        <observation classCode="OBS" moodCode="EVN">
          <code code="94558-4" displayName="SARS-CoV-2 Ag" codeSystem="2.16.840.1.113883.6.1"/>
          <value xsi:type="CD" code="260385009" displayName="négatif"
                 codeSystem="2.16.840.1.113883.6.96"/>
          <interpretationCode code="N"/>
          <referenceRange><observationRange>
            <text><reference value="#rng"/></text>
          </observationRange></referenceRange>
        </observation>
      </entryRelationship>
    </act>
  </entry>
</section>
"""


def test_a_result_in_a_battery_names_its_panel_and_reads_its_label_from_the_narrative() -> None:
    battery_result, _ = lab_results(cda(LAB_SECTION))

    assert battery_result == LabResult(
        code="2951-2",
        code_system=LOINC,
        label="Créatinine",
        value="140",
        unit="mmol/L",
        value_type="PQ",
        reference_range="<= 145 mmol/L",
        interpretation="",
        observed_at="20240105",
        status="completed",
        panel_code="24362-6",
        panel_label="Ionogramme",
    )


def test_a_coded_result_gives_its_label_as_value_and_a_text_range() -> None:
    _, coded_result = lab_results(cda(LAB_SECTION))

    assert (coded_result.value, coded_result.unit, coded_result.value_type) == ("négatif", "", "CD")
    assert coded_result.reference_range == "négatif"
    assert (coded_result.panel_code, coded_result.status, coded_result.observed_at) == ("", "", "")


# --- summary entries (VSM, vaccination) ------------------------------------------------------


def test_vsm_gives_its_eleven_entries_in_document_order() -> None:
    entries = summary_entries(sample(VSM))

    assert [(e.kind, e.code) for e in entries] == [
        ("problem", "G45.9"),
        ("problem", "I20.0"),
        ("risk_factor", "N10"),  # antécédents médicaux
        ("risk_factor", "I21.1"),
        ("risk_factor", "DDAF004"),  # antécédent chirurgical
        ("allergy", "60234100"),
        ("risk_factor", "74011-8"),  # mode de vie: tabac
        ("risk_factor", "398705004"),  # mode de vie: cannabis
        ("risk_factor", "D57.1"),  # antécédent familial
        ("treatment", "63564053"),
        ("treatment", "63245753"),
    ]


def test_vsm_problem_is_its_diagnosis_not_the_generic_observation_code() -> None:
    first = summary_entries(sample(VSM))[0]

    assert first == SummaryEntry(
        kind="problem",
        code="G45.9",
        code_system=CIM10,
        label="Accident ischémique cérébral transitoire, sans précision",
        start="20190811",
        end="",
        text="Accident ischémique cérébral transitoire",
    )


def test_vsm_past_illness_keeps_its_end_date() -> None:
    past = summary_entries(sample(VSM))[3]

    assert (past.label, past.start, past.end, past.text) == (
        "Infarctus transmural aigu du myocarde, de la paroi inférieure",
        "20180114",
        "20180125",
        "Infarctus transmural inférieur",
    )


def test_vsm_surgical_history_reads_its_procedure_and_its_wrapped_narrative() -> None:
    surgery = summary_entries(sample(VSM))[4]

    assert surgery == SummaryEntry(
        kind="risk_factor",
        code="DDAF004",
        code_system="1.2.250.1.215.300.1",
        label="Dilatation intraluminale de 2 vaisseaux coronaires avec pose d'endoprothèse,"
        " par voie artérielle transcutanée",
        start="20180114",
        end="",
        text="Dilatation intraluminale de deux vaisseaux coronaires avec pose d'endoprothèse,"
        " par voie artérielle transcutanée",
    )


def test_vsm_allergy_names_the_substance_and_takes_the_onset_of_the_observation() -> None:
    # The concern's own low is nullFlavor UNK and the observation's value is an empty CD.
    allergy = summary_entries(sample(VSM))[5]

    assert allergy == SummaryEntry(
        kind="allergy",
        code="60234100",
        code_system=CIS,
        label="PARACETAMOL",
        start="20180603",
        end="",
        text="Allergie médicamenteuse",
    )


def test_vsm_tobacco_use_keeps_its_quantity_as_text_and_cannabis_its_code() -> None:
    entries = summary_entries(sample(VSM))
    tobacco, cannabis = entries[6], entries[7]

    assert tobacco == SummaryEntry(
        kind="risk_factor",
        code="74011-8",
        code_system=LOINC,
        label="Consommation tabagique",
        start="",
        end="",
        text="25 {pack}/a",
    )
    assert (cannabis.code, cannabis.code_system, cannabis.label, cannabis.text) == (
        "398705004",
        SNOMED,
        "Cannabis",
        "Consommation de drogue",
    )


def test_vsm_family_history_is_the_relatives_diagnosis() -> None:
    family = summary_entries(sample(VSM))[8]

    assert (family.kind, family.code, family.label, family.start, family.text) == (
        "risk_factor",
        "D57.1",
        "Anémie à hématies falciformes sans crises",
        "",
        "Anémie drépanocytaire",
    )


def test_vsm_treatment_is_its_product_with_an_unknown_end_left_empty() -> None:
    last = summary_entries(sample(VSM))[-1]

    assert last == SummaryEntry(
        kind="treatment",
        code="63245753",
        code_system=CIS,
        label="COUMADINE 5mg, comprimé sécable",
        start="20190811",
        end="",
        text="COUMADINE 5mg, comprimé sécable",
    )


def test_vaccination_document_gives_four_vaccines_with_their_comments() -> None:
    entries = summary_entries(sample(VAC))

    assert [(e.kind, e.code, e.start) for e in entries] == [
        ("vaccination", "61077869", "1975"),
        ("vaccination", "68747507", "20090928094914+0100"),
        ("vaccination", "68747507", "20090928094914+0100"),
        ("vaccination", "61920725", "20210409"),
    ]
    assert entries[0] == SummaryEntry(
        kind="vaccination",
        code="61077869",
        code_system=CIS,
        label="VACCIN BCG SSI, poudre et solvant pour suspension injectable",
        start="1975",
        end="",
        text="L'usager a été informé des avantages et risques liés à la vaccination",
    )
    assert entries[1].text == "(texte libre)"
    assert entries[2].text == (
        "Prise récente et ponctuelle de solupred (60mg) en une prise pendant 2 jours"
    )
    # No comment entry: the vaccination's own narrative.
    assert (entries[3].label, entries[3].text) == (
        "VACCIN MENINGOCOCCIQUE A+C POLYOSIDIQUE, poudre et solvant pour suspension injectable"
        " en seringue préremplie",
        "VACCIN MENINGOCOCCIQUE",
    )


def test_vaccination_note_gives_its_single_vaccine() -> None:
    assert summary_entries(sample(VAC_NOTE)) == [
        SummaryEntry(
            kind="vaccination",
            code="68747507",
            code_system=CIS,
            label="VACCIN TETANIQUE PASTEUR, suspension injectable en seringue préremplie."
            " Vaccin tétanique adsorbé",
            start="20090928",
            end="",
            text="Prise récente et ponctuelle de solupred (60mg) en une prise pendant 2 jours",
        )
    ]


def test_a_no_known_allergy_entry_is_kept_as_an_allergy() -> None:
    root = cda(
        '<section><code code="48765-2" codeSystem="2.16.840.1.113883.6.1"/><entry>'
        '<act classCode="ACT" moodCode="EVN"><entryRelationship typeCode="SUBJ">'
        '<observation classCode="OBS" moodCode="EVN"><code code="ASSERTION"/>'
        '<value xsi:type="CD" code="no-known-allergies" displayName="No known allergies"'
        ' codeSystem="2.16.840.1.113883.5.1150.1"/>'
        "</observation></entryRelationship></act></entry></section>"
    )

    assert summary_entries(root) == [
        SummaryEntry(
            kind="allergy",
            code="no-known-allergies",
            code_system="2.16.840.1.113883.5.1150.1",
            label="No known allergies",
            start="",
            end="",
            text="",
        )
    ]


def test_a_display_name_wrapped_over_lines_is_read_as_one_line() -> None:
    # LDL-EES_2022.01.xml writes its CCAM label over two lines of the attribute.
    root = cda(
        '<section><code code="47519-4" codeSystem="2.16.840.1.113883.6.1"/><entry>'
        '<procedure classCode="PROC" moodCode="EVN"><code code="DDAF004"'
        ' displayName="Dilatation intraluminale\r\n                 de deux vaisseaux"'
        ' codeSystem="1.2.250.1.215.300.1"/><effectiveTime value="20170801"/>'
        "</procedure></entry></section>"
    )

    assert summary_entries(root)[0].label == "Dilatation intraluminale de deux vaisseaux"


def test_a_reimbursement_history_gives_no_summary_entry() -> None:
    # Its medication and vaccination sections are claims, not the patient's treatments.
    assert summary_entries(sample(REMB)) == []


# --- reimbursements (CNAM-HR) ----------------------------------------------------------------


def test_reimbursement_history_gives_its_twenty_five_items_by_section() -> None:
    items = reimbursements(sample(REMB))

    assert [item.category for item in items] == (
        ["medicine"] * 3
        + ["vaccination"] * 3
        + ["device"] * 2
        + ["encounter"] * 2
        + ["procedure"] * 15
    )


def test_a_medicine_is_coded_by_its_first_translation_and_dated_by_its_delivery() -> None:
    items = reimbursements(sample(REMB))

    assert items[0] == Reimbursement(
        category="medicine",
        code="3400935673220",
        code_system=CIP,
        label="LUDEAL CPR3/21",
        date="20190526",
        quantity="1",
        prescriber="Antoine DUPONT",
    )
    assert items[2] == Reimbursement(
        category="medicine",
        code="9064295",
        code_system=UCD,
        label="NUX VOMICA COMP BOIR GRL",
        date="20190308",
        quantity="4",
        prescriber=MARIGNY,
    )


def test_a_vaccine_claim_has_no_quantity() -> None:
    vaccine = reimbursements(sample(REMB))[4]

    assert vaccine == Reimbursement(
        category="vaccination",
        code="3400936924642",
        code_system=CIP,
        label="HBVAXPRO 10 MICROG/ML SUSP INJ SER1/1",
        date="20190708",
        quantity="",
        prescriber=MARIGNY,
    )


def test_a_device_is_its_lpp_code_and_an_unnamed_prescriber_is_his_rpps() -> None:
    items = reimbursements(sample(REMB))

    assert (items[6].code, items[6].code_system, items[6].date, items[6].prescriber) == (
        "3408693",
        LPP,
        "20190711",
        MARIGNY,
    )
    assert items[7] == Reimbursement(
        category="device",
        code="1397790",
        code_system=LPP,
        label="COMPRESSES ACIDE HYALURONIQUE&SULFADIAZINE ARGENTIQUE,GENEVRIER,IALUSET+,LES 10",
        date="20190528",
        quantity="1",
        prescriber="1.2.250.1.71.4.2.1^10100997245",
    )


def test_a_hospital_stay_is_its_ghs_dated_by_its_admission() -> None:
    items = reimbursements(sample(REMB))

    assert items[8] == Reimbursement(
        category="encounter",
        code="1940",
        code_system=GHS,
        label="Interventions majeures sur l'intestin grêle et le côlon, niveau 2",
        date="20190515",
        quantity="",
        prescriber="",
    )
    assert (items[9].code, items[9].date) == ("1721", "20190412")


def test_procedures_keep_their_ngap_ccam_or_nabm_code_and_date() -> None:
    procedures = reimbursements(sample(REMB))[10:]

    assert [(p.code, p.date) for p in procedures] == [
        ("G", "20190711"),
        ("G", "20190708"),
        ("G", "20190626"),
        ("FTR", "20190525"),
        ("G", "20190311"),
        ("G", "20190308"),
        ("HBMD053", "20190208"),
        ("BJQP002", "20190121"),
        ("YYYY300", "20190515"),
        ("QEQJ001", "20190430"),
        ("YYYY600", "20190430"),
        ("1208", "20190611"),
        ("9105", "20190611"),
        ("552", "20190515"),
        ("1208", "20190515"),
    ]
    assert procedures[3].code_system == NGAP
    assert procedures[6] == Reimbursement(
        category="procedure",
        code="HBMD053",
        code_system=CCAM_CNAM,
        label="Restaur 1 prémol / molaire 1 face par matér plastiq sans ancr",
        date="20190208",
        quantity="",
        prescriber="",  # an act names who performed it, not who prescribed it
    )
    assert (procedures[-1].code_system, procedures[-1].label) == (NABM, "T.S.H. (SANG)")


def test_a_history_without_claims_gives_no_item() -> None:
    # Each of its seven sections carries one placeholder: "no-known-..." codes, or the
    # encounter's "Aucun" timed nullFlavor NA.
    assert reimbursements(sample(REMB_EMPTY)) == []


def test_a_summary_document_gives_no_reimbursement() -> None:
    assert reimbursements(sample(VSM)) == []
    assert reimbursements(sample(VAC)) == []


# --- documents without such entries ----------------------------------------------------------


@pytest.mark.parametrize("name", N1)
def test_a_level_one_document_gives_no_entry(name: str) -> None:
    root = sample(name)

    assert (lab_results(root), summary_entries(root), reimbursements(root)) == ([], [], [])


@pytest.mark.parametrize("name", [VSM, VAC, REMB])
def test_a_document_without_lab_entries_gives_no_result(name: str) -> None:
    assert lab_results(sample(name)) == []


def test_a_root_that_is_not_a_clinical_document_gives_nothing() -> None:
    root = parse(b'<Other xmlns="urn:hl7-org:v3"><component><structuredBody/></component></Other>')

    assert (lab_results(root), summary_entries(root), reimbursements(root)) == ([], [], [])
