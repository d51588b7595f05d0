"""Mapping HL7 v2 messages to record store operations, checked against the shared samples."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from engine.errors import UnknownPatient, UnsupportedMessageType, ValidationError
from engine.hl7v2.reader import Message
from engine.hl7v2.values import parse_date, parse_ts
from engine.identity.ins import InsKind
from engine.identity.model import Ins, LocalId, Traits
from engine.transforms.map_hl7 import (
    SUPPORTED_TYPES,
    extract_encounter,
    extract_observations,
    extract_patient,
    map_message,
)
from engine.transforms.patient_key import patient_key
from tests.sample_files import SAMPLES


def sample(relative: str) -> Message:
    path = SAMPLES / relative
    if not path.exists():
        pytest.skip(f"sample {path} is absent (../shared/samples not mounted)")
    # utf-8-sig: LAB-ORU-1.hl7 starts with a byte order mark.
    return Message(path.read_text(encoding="utf-8-sig"))


def test_french_admission_gives_the_local_identifier_the_ins_and_its_traits() -> None:
    patient = extract_patient(sample("fr-ans/adt_a01_sgl.hl7"))
    identity = patient.identity
    assert identity.local_ids == (LocalId("000003", "CHU-X", "000897406", "PI"),)
    assert identity.ins == (Ins("279035121518989", "1.2.250.1.213.1.4.10", InsKind.NIR_TEST),)
    assert identity.traits == Traits(
        birth_name="PAT-TROIS",
        first_given_name="DOMINIQUE",
        given_names="DOMINIQUE",
        birth_date="19790328",
        sex="F",
        birth_place="63220",  # INSEE code of the BDL address
    )
    assert identity.reliability == ("VALI",)
    assert identity.birth_name_typed and not identity.birth_date_corrected
    assert patient.address == "28 Av de Breteuil, PARIS, 75007, FRA"


def test_legal_name_repetition_is_preferred_over_the_first() -> None:
    patient = extract_patient(sample("intl-mixed/ADT-A01-01.hl7"))
    traits = patient.identity.traits
    assert (traits.birth_name, traits.given_names) == ("Josh", "stanley")
    assert patient.identity.local_ids[0] == LocalId("PATID1234", "test1", "2.16.1", "MR")
    assert patient.identity.local_ids[1] == LocalId("123456789", "USSSA", "", "SS")
    assert traits.birth_place == "St. Francis Community Hospital of Lower South Side"
    assert patient.phone == "78788788"


def test_given_names_join_xpn2_and_xpn3() -> None:
    patient = extract_patient(sample("python-hl7/sample_hl7.hl7"))
    traits = patient.identity.traits
    assert (traits.birth_name, traits.first_given_name, traits.given_names) == (
        "EVERYWOMAN",
        "EVE",
        "EVE E",
    )
    assert patient.identity.local_ids == (LocalId("555-44-4444"),)
    assert patient.identity.birth_name_typed  # PID-5 is typed L
    assert parse_date(traits.birth_date) is None  # 196203520 is not a date


def test_pid3_with_only_the_hl7_null_is_an_unknown_patient() -> None:
    text = sample("python-hl7/sample_hl7.hl7").text.replace("|555-44-4444|", '|""|')
    with pytest.raises(UnknownPatient, match="PID-3"):
        extract_patient(Message(text))


def test_message_without_pid_is_an_unknown_patient() -> None:
    msg = Message("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rEVN|A01|20240101")
    with pytest.raises(UnknownPatient, match="no PID"):
        extract_patient(msg)


def test_admission_opens_the_visit_of_pv1_19_at_the_event_time() -> None:
    enc = extract_encounter(sample("fr-ans/adt_a01_sgl.hl7"), closing=False)
    assert enc is not None
    assert (enc.visit_number, enc.visit_authority, enc.patient_class) == (
        "000897406",
        "CHU-X",
        "I",
    )
    assert enc.admitted_ts == "20240306111154"
    # No offset in the message: Paris time, UTC+1 in March.
    assert enc.admitted_at == datetime(2024, 3, 6, 10, 11, 54, tzinfo=UTC)
    assert enc.status is None


def test_encounter_reads_location_attending_and_pv1_44() -> None:
    enc = extract_encounter(sample("intl-mixed/ADT-A01-01.hl7"), closing=False)
    assert enc is not None
    assert (enc.visit_number, enc.visit_authority) == ("40007716", "AccMng")
    assert enc.location == "HUH AE OMU / OMU B / Bed 03 / HOMERTON UNIVER"
    assert enc.attending == "1122334"
    assert enc.admitted_ts == "20150208113419+0110"


def test_discharge_closes_the_visit_at_the_event_time() -> None:
    op = map_message(sample("fr-ans/adt_a03_sgl.hl7"))
    assert op.kind == "close_encounter"
    assert op.encounter is not None
    assert (op.encounter.status, op.encounter.discharged_ts) == ("closed", "20240306111154")


def test_result_message_without_visit_has_no_encounter() -> None:
    assert extract_encounter(sample("intl-mixed/LAB-ORU-1.hl7"), closing=False) is None


def test_lab_results_are_read_with_their_order() -> None:
    obs = extract_observations(sample("intl-mixed/LAB-ORU-1.hl7"))
    assert len(obs) == 10
    ery = obs[1]
    assert (ery.code, ery.code_system, ery.code_text) == ("11273-0", "LN", "ERYTHROCYTES")
    assert (ery.value_type, ery.value, ery.unit) == ("NM", "4.06", "tera.l-1")
    assert (ery.abnormal_flags, ery.status) == ("N", "P")
    assert ery.observed_ts == "20141006062700+0700"
    assert ery.observed_at == datetime(2014, 10, 5, 23, 27, tzinfo=UTC)
    assert (ery.order.placer_number, ery.order.filler_number) == ("88502218", "82503246")
    assert ery.order.code == "24317-0"
    assert obs[5].order.placer_number == "855238581"
    assert obs[5].code_text == "NEUTROPHILS/100 LEUKOCYTES"
    assert (obs[5].value, obs[5].unit) == ("72", "%")


def test_observation_time_falls_back_to_obr_7() -> None:
    obs = extract_observations(sample("python-hl7/sample_hl7.hl7"))
    assert len(obs) == 2
    glucose = obs[0]
    assert (glucose.code, glucose.value_type, glucose.value) == ("1554-5", "SN", "^182")
    assert (glucose.unit, glucose.reference_range, glucose.abnormal_flags) == (
        "mg/dl",
        "70_105",
        "H",
    )
    assert glucose.observed_ts == "200202150730"
    assert glucose.order.text == "GLUCOSE"


def test_observations_before_any_obr_have_no_order() -> None:
    obs = extract_observations(sample("intl-mixed/ORU-R01-01.hl7"))
    assert len(obs) == 5
    assert obs[0].code == "8867-4"
    assert obs[0].order.placer_number == ""
    cwe = obs[2]
    assert cwe.value == "27268008^Salmonella^SCT^^^^^^Salmonella species"
    assert (cwe.unit, cwe.reference_range, cwe.abnormal_flags) == ("beats/min", "70-80", "A")
    assert cwe.order.placer_number == "845439"
    assert cwe.order.code_system == "XYZ"
    assert obs[4].value == "27~25"  # NM repetitions


def test_french_result_report_keeps_coded_values_as_hl7_text() -> None:
    observations = extract_observations(sample("fr-ans/oru_r01_v12.hl7"))
    assert len(observations) == 12
    assert observations[6].code == "DESTDMP"
    assert observations[6].value == "Y"
    assert observations[10].value == "1.2.250.1.213.1.1.8^CDAN1"
    assert observations[0].order.text.startswith("Créatinine clairance")


def test_a_result_carrying_a_cda_in_an_ed_obx_is_a_document() -> None:
    op = map_message(sample("fr-ans/oru_r01_v12.hl7"))
    assert op.kind == "add_documents"
    assert op.patient.identity.ins[0].kind is InsKind.NIR
    # OBX-1 carries a placeholder text, base64 without its padding; OBX-10 (mail body) is not
    # XML and is no document.
    [document] = op.documents
    assert document.content == "Document médical au format CDA".encode()
    assert (document.action, document.masked_ps) == ("initial", False)


@pytest.mark.parametrize(
    ("relative", "kind", "has_encounter"),
    [
        ("intl-mixed/ADT-A01-01.hl7", "upsert_patient", True),
        ("intl-mixed/ADT-A28-01.hl7", "upsert_patient", False),
        ("intl-mixed/ORU-R01-01.hl7", "add_results", False),
    ],
)
def test_message_types_map_to_their_operation(
    relative: str, kind: str, has_encounter: bool
) -> None:
    op = map_message(sample(relative))
    assert op.kind == kind
    assert (op.encounter is not None) == has_encounter


def test_cancelled_discharge_reopens_the_encounter() -> None:
    text = sample("fr-ans/adt_a03_sgl.hl7").text.replace("ADT^A03^ADT_A03", "ADT^A13^ADT_A01")
    op = map_message(Message(text))
    assert op.encounter is not None
    assert (op.encounter.status, op.encounter.discharged_at) == ("open", None)


def test_discharge_without_visit_number_is_invalid() -> None:
    text = sample("fr-ans/adt_a03_sgl.hl7").text
    for visit in ("000897406^^^CHU-X&000897406&M^VN", "24000006^^^CHU-X&000897406&M^AN"):
        assert visit in text
        text = text.replace(visit, "")  # PV1-19, then PID-18
    with pytest.raises(ValidationError, match="A03"):
        map_message(Message(text))


def test_merge_names_the_absorbed_identifier_of_mrg1() -> None:
    op = map_message(sample("intl-mixed/ADT-A40-01.hl7"))
    assert op.kind == "merge_patients"
    assert op.patient.identity.local_ids == (LocalId("12345", "BCBS", "", "MR"),)
    assert op.previous is not None
    assert op.previous.local_ids == (LocalId("56789", "BCBS", "", "MR"),)


def test_merge_without_mrg1_is_invalid() -> None:
    text = sample("intl-mixed/ADT-A40-01.hl7").text.replace("MRG|56789^^^BCBS^MR", "MRG|")
    with pytest.raises(ValidationError, match="MRG-1"):
        map_message(Message(text))


def test_unsupported_message_type_is_refused() -> None:
    assert "ADT^A45" not in SUPPORTED_TYPES
    text = sample("intl-mixed/ADT-A40-01.hl7").text.replace("ADT^A40", "ADT^A45")
    with pytest.raises(UnsupportedMessageType, match="ADT\\^A45"):
        map_message(Message(text))


def test_patient_key_prefers_the_local_identifier() -> None:
    assert patient_key(sample("fr-ans/adt_a01_sgl.hl7")) == "000003^CHU-X"
    assert patient_key(sample("intl-mixed/ORU-R01-01.hl7")) == "14^IA PHIMS Stage"
    assert patient_key(sample("python-hl7/sample_hl7.hl7")) == "555-44-4444^"


def test_patient_key_falls_back_to_the_universal_id_and_to_none() -> None:
    msg = Message('MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|||X1^^^&1.2.3&ISO^INS~""^^^H^PI')
    assert patient_key(msg) == "X1^1.2.3"
    assert patient_key(Message("MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1||")) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=UTC) - timedelta(hours=1)),
        ("20240306111154.1234+0000", datetime(2024, 3, 6, 11, 11, 54, 123400, tzinfo=UTC)),
        (
            "201203141259-0215",
            datetime(2012, 3, 14, 12, 59, tzinfo=timezone(-timedelta(hours=2, minutes=15))),
        ),
        ("20240706", datetime(2024, 7, 5, 22, 0, tzinfo=UTC)),  # Paris summer time
        ("196203520", None),
        ("20241301", None),
        ("yesterday", None),
        ("", None),
        ("20240101+9999", None),
    ],
)
def test_parse_ts_reads_hl7_timestamps_and_never_raises(
    text: str, expected: datetime | None
) -> None:
    assert parse_ts(text) == expected


def test_parse_date_needs_day_precision() -> None:
    assert parse_date("198808181126+0215") == date(1988, 8, 18)
    assert parse_date("198808") is None


def test_escaped_plain_values_are_unescaped_and_coded_values_kept_as_hl7_text() -> None:
    msg = Message(
        "MSH|^~\\&|LAB|X|EHR|Y|20240101||ORU^R01|1|P|2.5\r"
        "PID|1||P1^^^LAB^PI\r"
        "OBR|1|O1||GLU^Glucose^L\r"
        "OBX|1|ST|C1^Comment \\T\\ note^L||A\\T\\B~C|||L~H^High|||F\r"
        "OBX|2|CWE|C2^Germ^L||G1^E. coli \\T\\ co^SCT||||||F\r"
    )
    plain, coded = extract_observations(msg)
    assert (plain.value, plain.code_text, plain.abnormal_flags) == (
        "A&B~C",
        "Comment & note",
        "L~H",
    )
    assert coded.value == "G1^E. coli \\T\\ co^SCT"
    assert (plain.order.code, coded.order.placer_number) == ("GLU", "O1")
