"""The record store destination on SQLite and PostgreSQL (``store_db`` in tests/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from engine.adapters import record_store
from engine.adapters.record_store import RecordStore, RecordStoreConfig
from engine.errors import IdentityConflict, PatientNotKnown
from engine.hl7v2.reader import Message
from engine.identity.rules import IdentityPolicy
from engine.pipeline.delivery import BuildContext, Delivery
from engine.transforms.map_hl7 import map_message
from tests.record_filing import apply_operation, file_delivery
from tests.record_lookups import counts, find_patient, patient_encounters, patient_observations
from tests.sample_files import SAMPLES

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def sample_text(relative: str) -> str:
    path = SAMPLES / relative
    if not path.exists():
        pytest.skip(f"sample {path} is absent (../shared/samples not mounted)")
    return path.read_text(encoding="utf-8-sig")


#: The demo profile: the French samples carry the test INS OID.
STORE = RecordStore(policy=IdentityPolicy(accept_test_ins=True))


def apply(db: Engine, text: str, message_id: int) -> int:
    with db.begin() as conn:
        return apply_operation(STORE, conn, message_id, map_message(Message(text)), NOW)


def person_from(text: str) -> str:
    """An ADT^A28 registering the patient of ``text`` (its MSH and PID, nothing else)."""
    segments = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    msh = next(s for s in segments if s.startswith("MSH"))
    pid = next(s for s in segments if s.startswith("PID"))
    fields = msh.split("|")
    fields[8] = "ADT^A28^ADT_A05"
    return "|".join(fields) + "\r" + pid


def adt(pid3: str, family: str, control_id: str = "1") -> str:
    """A minimal ADT^A28 (person only) naming ``pid3``."""
    return (
        f"MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A28^ADT_A05|{control_id}|P|2.5\r"
        f"PID|1||{pid3}||{family}^JEAN^^^^^L||19800101|M"
    )


def test_admission_creates_the_patient_its_identifiers_and_an_open_encounter(
    store_db: Engine,
) -> None:
    patient_id = apply(store_db, sample_text("fr-ans/adt_a01_sgl.hl7"), 1)
    with store_db.connect() as conn:
        patient = find_patient(conn, "000003", "CHU-X")
        assert patient is not None
        assert patient["id"] == patient_id
        assert (patient["birth_name"], patient["given_names"]) == ("PAT-TROIS", "DOMINIQUE")
        assert (patient["ins"], patient["ins_oid"]) == ("279035121518989", "1.2.250.1.213.1.4.10")
        assert patient["identity_status"] == "VALI"
        assert patient["birth_date_parsed"].isoformat() == "1979-03-28"
        assert patient["last_message_id"] == 1
        assert patient["created_at"] == NOW
        assert [(i["value"], i["type_code"]) for i in patient["identifiers"]] == [("000003", "PI")]
        [enc] = patient_encounters(conn, patient_id)
        assert (enc["visit_number"], enc["visit_authority"], enc["status"]) == (
            "000897406",
            "CHU-X",
            "open",
        )
        assert enc["admitted_at"] == datetime(2024, 3, 6, 10, 11, 54, tzinfo=UTC)
        assert counts(conn) == {"patients": 1, "identifiers": 1, "encounters": 1, "observations": 0}


def test_update_changes_demographics_without_duplicating(store_db: Engine) -> None:
    admission = sample_text("fr-ans/adt_a01_sgl.hl7")
    first = apply(store_db, admission, 1)
    update = (
        admission.replace("ADT^A01^ADT_A01", "ADT^A08^ADT_A01")
        .replace("28 Av de Breteuil^^PARIS^^75007", "3 Rue Neuve^^LYON^^69001")
        .replace("|19790328|F|", "|19790328||")  # an empty sex must not erase the stored one
        .replace("|VALI|", "||")  # (with its INS, the message would lack a trait: 905)
    )
    assert apply(store_db, update, 2) == first
    with store_db.connect() as conn:
        patient = find_patient(conn, "000003", "CHU-X")
        assert patient is not None
        assert patient["address"] == "3 Rue Neuve, LYON, 69001, FRA"
        assert patient["sex"] == "F"
        assert patient["last_message_id"] == 2
        assert counts(conn) == {"patients": 1, "identifiers": 1, "encounters": 1, "observations": 0}


def test_discharge_closes_the_encounter(store_db: Engine) -> None:
    patient_id = apply(store_db, sample_text("fr-ans/adt_a01_sgl.hl7"), 1)
    assert apply(store_db, sample_text("fr-ans/adt_a03_sgl.hl7"), 2) == patient_id
    with store_db.connect() as conn:
        [enc] = patient_encounters(conn, patient_id)
    assert enc["status"] == "closed"
    assert enc["discharged_at"] == datetime(2024, 3, 6, 10, 11, 54, tzinfo=UTC)
    assert enc["admitted_at"] is not None  # kept from the admission
    assert enc["last_message_id"] == 2


def test_result_message_stores_each_observation_with_its_fields(store_db: Engine) -> None:
    oru = sample_text("intl-mixed/LAB-ORU-1.hl7")
    patient_id = apply(store_db, person_from(oru), 6)
    assert apply(store_db, oru, 7) == patient_id
    with store_db.connect() as conn:
        rows = patient_observations(conn, patient_id)
    assert len(rows) == 10
    assert {r["message_id"] for r in rows} == {7}
    ery = rows[1]
    assert (ery["code"], ery["code_system"], ery["code_text"]) == ("11273-0", "LN", "ERYTHROCYTES")
    assert (ery["value"], ery["unit"], ery["abnormal_flags"], ery["status"]) == (
        "4.06",
        "tera.l-1",
        "N",
        "P",
    )
    assert (ery["order_placer_number"], ery["order_code"]) == ("88502218", "24317-0")
    assert ery["order_text"] == "Hemogram and platelet count, automated"
    assert ery["observed_ts"] == "20141006062700+0700"
    assert ery["observed_at"] == datetime(2014, 10, 5, 23, 27, tzinfo=UTC)
    assert rows[0]["observed_at"] is None  # OBX-14 and OBR-7 empty
    assert rows[9]["order_filler_number"] == "890775544"


def test_result_for_an_unknown_patient_is_held_and_writes_nothing(store_db: Engine) -> None:
    with pytest.raises(PatientNotKnown) as caught:
        apply(store_db, sample_text("intl-mixed/LAB-ORU-1.hl7"), 1)
    assert caught.value.code == "902"
    assert caught.value.keys == ("local:10006579^1",)
    with store_db.connect() as conn:
        assert counts(conn) == {"patients": 0, "identifiers": 0, "encounters": 0, "observations": 0}


def results_only(text: str) -> str:
    """The message without its CDA OBX (ED, XML)."""
    return "\r".join(s for s in text.splitlines() if not s.startswith("OBX|1|ED|"))


ORU_INS = "276037510669380^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
ADMITTED_INS = "279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"


def test_result_naming_the_ins_attaches_to_the_admitted_patient(store_db: Engine) -> None:
    patient_id = apply(store_db, sample_text("fr-ans/adt_a01_sgl.hl7"), 1)
    # The ORU sample carries only an INS, of another test patient: give it the admitted
    # patient's INS and traits, and leave out its CDA (OBX 1) to keep the coded results.
    oru = (
        results_only(sample_text("fr-ans/oru_r01_v12.hl7"))
        .replace(ORU_INS, ADMITTED_INS)
        .replace("DE VINCI^DONATELLO^^^^^L||20100807|M", "PAT-TROIS^DOMINIQUE^^^^^L||19790328|F")
    )
    assert apply(store_db, oru, 2) == patient_id
    with store_db.connect() as conn:
        assert counts(conn) == {
            "patients": 1,
            "identifiers": 1,
            "encounters": 1,
            "observations": 11,
        }
        assert patient_observations(conn, patient_id)[5]["code"] == "DESTDMP"


def test_result_naming_a_known_ins_with_other_traits_is_a_conflict(store_db: Engine) -> None:
    apply(store_db, sample_text("fr-ans/adt_a01_sgl.hl7"), 1)
    oru = results_only(sample_text("fr-ans/oru_r01_v12.hl7")).replace(ORU_INS, ADMITTED_INS)
    with pytest.raises(IdentityConflict, match="birth_name, first_given_name, birth_date, sex"):
        apply(store_db, oru, 2)
    with store_db.connect() as conn:
        assert counts(conn)["observations"] == 0


def test_identifiers_of_two_patients_raise_and_write_nothing(store_db: Engine) -> None:
    first = apply(store_db, adt("A1^^^CHU-X^PI", "MARTIN", "1"), 1)
    second = apply(store_db, adt("B2^^^CHU-Y^PI", "DURAND", "2"), 2)
    assert first != second
    both = adt("A1^^^CHU-X^PI~B2^^^CHU-Y^PI~C3^^^CHU-Z^PI", "MERGED", "3")
    with pytest.raises(IdentityConflict, match="belong to 2 different patients"):
        apply(store_db, both, 3)
    with store_db.connect() as conn:
        assert counts(conn) == {"patients": 2, "identifiers": 2, "encounters": 0, "observations": 0}
        patient = find_patient(conn, "A1")
        assert patient is not None
        assert (patient["birth_name"], patient["last_message_id"]) == ("MARTIN", 1)


def test_same_value_under_two_authorities_gives_two_patients(store_db: Engine) -> None:
    first = apply(store_db, adt("12345^^^CHU-X^PI", "MARTIN", "1"), 1)
    second = apply(store_db, adt("12345^^^CHU-Y^PI", "DURAND", "2"), 2)
    assert first != second
    with store_db.connect() as conn:
        assert counts(conn)["patients"] == 2
        found = find_patient(conn, "12345", "CHU-Y")
        assert found is not None
        assert found["birth_name"] == "DURAND"
        with pytest.raises(LookupError, match="2 patients"):
            find_patient(conn, "12345")


def test_identifier_without_authority_matches_only_itself(store_db: Engine) -> None:
    bare = apply(store_db, adt("777", "BARE", "1"), 1)
    assert apply(store_db, adt("777", "BARE", "2"), 2) == bare
    assert apply(store_db, adt("777^^^CHU-X^PI", "LOCAL", "3"), 3) != bare
    with store_db.connect() as conn:
        assert counts(conn)["identifiers"] == 2


def test_configured_destination_writes_through_the_delivery(store_db: Engine) -> None:
    store = record_store.build(RecordStoreConfig(type="record_store"), "dmp", BuildContext())
    msg = Message(sample_text("python-hl7/sample_hl7.hl7"))
    apply(store_db, person_from(msg.text), 4)
    with store_db.begin() as conn:
        file_delivery(store, Delivery(conn, 5, "lab", msg, msg.text.encode(), NOW))
    with store_db.connect() as conn:
        patient = find_patient(conn, "555-44-4444")
        assert patient is not None
        rows = patient_observations(conn, patient["id"])
    assert store.name == "dmp"
    assert [(r["code"], r["value"], r["reference_range"]) for r in rows] == [
        ("1554-5", "^182", "70_105"),
        ("1553-5", "^182", "70_105"),
    ]


def test_a_database_refusal_gives_a_reason_without_the_rows_values(store_db: Engine) -> None:
    from sqlalchemy import insert

    from engine.pipeline.pipeline import StageError, stage
    from engine.store.record_core import patient_identifiers

    patient_id = apply(store_db, adt("SECRET-IPP^^^CHU-X^PI", "MARTIN"), 1)
    row = {"patient_id": patient_id, "value": "SECRET-IPP", "authority": "CHU-X"}
    row.update(authority_oid="", type_code="PI")
    with pytest.raises(StageError) as caught, store_db.begin() as conn, stage("destination:x"):
        conn.execute(insert(patient_identifiers).values(**row))
    assert caught.value.error.code == "transform_failed"
    assert "rejected the write" in caught.value.error.reason
    assert "SECRET-IPP" not in caught.value.error.reason
