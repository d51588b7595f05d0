"""When a message's INS may be used (engine.identity.rules) and how traits compare."""

from __future__ import annotations

import pytest

from engine.errors import IdentityConflict, IncompleteTraits, InsRefused, InvalidIns
from engine.identity.ins import InsKind
from engine.identity.model import Identity, Ins, Traits, fold
from engine.identity.rules import IdentityPolicy, decide_ins

TEST_INS = Ins("279035121518989", "1.2.250.1.213.1.4.10", InsKind.NIR_TEST)
NIR = Ins("279035121518989", "1.2.250.1.213.1.4.8", InsKind.NIR)
NIA = Ins("179039912345675", "1.2.250.1.213.1.4.9", InsKind.NIA)
TRAITS = Traits("PAT-TROIS", "DOMINIQUE", "DOMINIQUE", "19790328", "F")
DEMO = IdentityPolicy(accept_test_ins=True)
PRODUCTION = IdentityPolicy()


def identity(*ins: Ins, status: str = "VALI", traits: Traits = TRAITS, **kw: bool) -> Identity:
    return Identity(ins=ins, traits=traits, reliability=(status,) if status else (), **kw)


def test_a_qualified_ins_with_its_traits_is_used() -> None:
    assert decide_ins(identity(TEST_INS), DEMO).usable == (TEST_INS,)


def test_an_ins_without_vali_is_not_used_and_says_why() -> None:
    decision = decide_ins(identity(TEST_INS, status="PROV"), DEMO)
    assert decision.usable == ()
    assert "VALI" in decision.why_not


def test_a_corrected_birth_date_keeps_the_ins_out() -> None:
    decision = decide_ins(identity(TEST_INS, birth_date_corrected=True), DEMO)
    assert decision.usable == ()
    assert "ZFD-4" in decision.why_not


def test_the_nir_is_preferred_over_the_nia() -> None:
    assert decide_ins(identity(NIA, NIR), PRODUCTION).preferred == NIR


def test_two_different_nir_in_one_message_is_a_conflict() -> None:
    other = Ins("185057512300143", NIR.oid, InsKind.NIR)
    with pytest.raises(IdentityConflict, match="two different NIR"):
        decide_ins(identity(NIR, other), PRODUCTION)


def test_a_wrong_key_is_an_invalid_ins_even_when_qualified() -> None:
    wrong = Ins("279035121518988", NIR.oid, InsKind.NIR)
    with pytest.raises(InvalidIns, match="key"):
        decide_ins(identity(wrong), PRODUCTION)


def test_production_refuses_the_test_and_demo_oids() -> None:
    with pytest.raises(InsRefused, match="nir_test"):
        decide_ins(identity(TEST_INS), PRODUCTION)
    demo = Ins(TEST_INS.value, "1.2.250.1.213.1.4.11", InsKind.NIR_DEMO)
    with pytest.raises(InsRefused, match="nir_demo"):
        decide_ins(identity(demo), PRODUCTION)


@pytest.mark.parametrize("missing", ["birth_name", "first_given_name", "birth_date", "sex"])
def test_an_ins_without_one_of_its_traits_is_error_905(missing: str) -> None:
    values = {
        "birth_name": "PAT-TROIS",
        "first_given_name": "DOMINIQUE",
        "birth_date": "19790328",
        "sex": "F",
    }
    values[missing] = ""
    with pytest.raises(IncompleteTraits, match=missing) as caught:
        decide_ins(identity(TEST_INS, traits=Traits(**values)), DEMO)
    assert caught.value.code == "905"


def test_missing_traits_do_not_matter_when_the_ins_is_not_used() -> None:
    assert decide_ins(identity(TEST_INS, status="", traits=Traits()), DEMO).usable == ()


def test_only_billing_numbers_say_so() -> None:
    decision = decide_ins(Identity(ignored_ins=1), DEMO)
    assert "billing" in decision.why_not


def test_folding_ignores_case_accents_and_spacing_but_keeps_hyphens_and_apostrophes() -> None:
    assert fold("  Lefèvre ") == fold("LEFEVRE")
    assert fold("Noël") == fold("NOEL")
    assert fold("LE-GALL") != fold("LE GALL")
    assert fold("D'ALMEIDA") != fold("DALMEIDA")


def test_traits_differ_only_on_strict_traits_given_on_both_sides() -> None:
    stored = TRAITS
    assert Traits("pat-trois", "Dominique", "", "19790328", "F").differences(stored) == []
    assert Traits("PAT-TROIS", "", "", "19790329", "").differences(stored) == ["birth_date"]
    changed = Traits("DUPONT", "MARIE", "MARIE", "19790328", "M")
    assert changed.differences(stored) == ["birth_name", "first_given_name", "sex"]
    # An untyped name is not compared with the birth name; birth date and sex still are.
    assert changed.differences(stored, names=False) == ["sex"]
