"""The identity an HL7 v2 PID gives (engine.identity.hl7, DOMAIN.md §2), and the ANS test
patient read the same from its HL7 v2 and CDA forms."""

from __future__ import annotations

import pytest

from engine.cda.patient_traits import cda_identity
from engine.cda.safexml import parse_document
from engine.hl7v2.reader import Message
from engine.identity.hl7 import hl7_identity, merged_identity
from engine.identity.ins import InsKind
from engine.identity.model import STRICT_TRAITS, Identity, Ins, LocalId
from tests.sample_files import CDA_SAMPLES, SAMPLES


def cda_identity_from_bytes(data: bytes) -> Identity:
    """The identity of serialized CDA bytes, parsed safely as intake parses them."""
    return cda_identity(parse_document(data))


MSH = "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A28^ADT_A05|1|P|2.5"


def identity_of(*segments: str) -> Identity:
    msg = Message("\r".join((MSH, *segments)))
    pid = msg.segment("PID")
    assert pid is not None
    return hl7_identity(msg, pid)


def test_billing_numbers_and_unknown_ins_oids_are_not_an_ins_nor_a_local_id() -> None:
    found = identity_of(
        "PID|1||"
        "279035121518989^^^C&1.2.250.1.213.1.4.8&ISO^NH~"
        "179039912345645^^^C&1.2.250.1.213.1.4.13&ISO^PI~"
        "123^^^X&1.2.3&ISO^INS~"
        "IPP7^^^CHU-X&1.2.250.1.71&ISO^PI"
    )
    assert found.ins == ()
    assert found.local_ids == (LocalId("IPP7", "CHU-X", "1.2.250.1.71", "PI"),)
    assert found.ignored_ins == 3


def test_birth_name_is_the_l_name_and_used_name_the_d_name() -> None:
    found = identity_of("PID|1||IPP1^^^CHU-X^PI||MARTIN^JULIE^^^^^D~DURAND^JULIE^JULIE ANNE^^^^L")
    assert (found.traits.birth_name, found.traits.used_name) == ("DURAND", "MARTIN")
    assert (found.traits.first_given_name, found.traits.given_names) == ("JULIE", "JULIE ANNE")
    assert found.birth_name_typed


def test_an_untyped_name_is_taken_as_the_birth_name_but_flagged() -> None:
    found = identity_of("PID|1||IPP1^^^CHU-X^PI||MARTIN^JULIE")
    assert found.traits.birth_name == "MARTIN"
    assert not found.birth_name_typed


def test_zfd4_says_the_birth_date_was_corrected() -> None:
    assert identity_of("PID|1||IPP1^^^CHU-X^PI", "ZFD|||||Y").birth_date_corrected is False
    assert identity_of("PID|1||IPP1^^^CHU-X^PI", "ZFD||||Y").birth_date_corrected is True


def test_the_hl7_null_in_the_ins_slot_is_no_ins() -> None:
    found = identity_of(
        'PID|1||IPP1^^^CHU-X^PI~""^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS'
    )
    assert found.ins == ()


def test_mrg1_names_the_former_identity() -> None:
    msg = Message(
        "\r".join(
            (
                MSH,
                "PID|1||IPP1^^^CHU-X^PI",
                "MRG|279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS~OLD^^^CHU-X^PI",
            )
        )
    )
    former = merged_identity(msg)
    assert former is not None
    assert former.ins == (Ins("279035121518989", "1.2.250.1.213.1.4.8", InsKind.NIR),)
    assert former.local_ids == (LocalId("OLD", "CHU-X", "", "PI"),)


def test_the_ans_test_patient_is_the_same_in_its_hl7_and_cda_forms() -> None:
    adt = SAMPLES / "fr-ans" / "adt_a01_sgl.hl7"
    cda = CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
    if not adt.exists() or not cda.exists():
        pytest.skip("the ANS samples are absent")
    msg = Message(adt.read_text(encoding="utf-8"))
    pid = msg.segment("PID")
    assert pid is not None
    from_hl7, from_cda = hl7_identity(msg, pid), cda_identity_from_bytes(cda.read_bytes())
    assert from_hl7.preferred_ins == from_cda.preferred_ins
    assert from_hl7.preferred_ins == Ins(
        "279035121518989", "1.2.250.1.213.1.4.10", InsKind.NIR_TEST
    )
    for trait in STRICT_TRAITS:
        assert getattr(from_hl7.traits, trait) == getattr(from_cda.traits, trait), trait
    assert from_hl7.traits.differences(from_cda.traits) == []
    assert from_hl7.reliability == from_cda.reliability == ("VALI",)
