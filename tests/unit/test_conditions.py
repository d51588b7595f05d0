"""Conditions shared by filters and routes, tested on real messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.hl7v2.reader import Message
from engine.routes.conditions import Condition, FieldCondition, type_matches

ORU = "\r".join(
    [
        "MSH|^~\\&|LABO|LAB-A^1.2.250.1.71^ISO|DPI|CHU-X|20240306111154||ORU^R01^ORU_R01|"
        "ORU-1|P|2.5",
        "PID|1||000003^^^CHU-X^PI~279035121518989^^^ASIP-SANTE-INS-NIR^INS||PAT-TROIS^DOMINIQUE",
        "OBR|1|845439^LABO|986^LABO|24323-8^Panel^LN",
        "OBX|1|NM|1554-5^Glucose^LN||182|mg/dl|70-105|H|||F",
        "OBX|2|NM|2345-7^Glucose serum^LN||5.1|mmol/l|3.9-5.8||||F",
    ]
)

ADT = "\r".join(
    [
        "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A01^ADT_A01|3975|P|2.5",
        "PID|1||000003^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F",
        "PV1|1|I|||||||||||||||||000897406^^^CHU-X^VN",
    ]
)


@pytest.fixture
def oru() -> Message:
    return Message(ORU)


@pytest.fixture
def adt() -> Message:
    return Message(ADT)


def field(path: str, **test: object) -> FieldCondition:
    """A field condition built as the YAML gives it (``in`` is the key's spelling)."""
    return FieldCondition.model_validate({"field": path, **test})


# -- FieldCondition ------------------------------------------------------------------------


def test_equals_compares_the_whole_unescaped_value(oru: Message) -> None:
    assert field("OBX-3.1", equals="1554-5").test(oru)
    assert not field("OBX-3.1", equals="1554").test(oru)
    assert field("PID-3[2].5", equals="INS").test(oru)


def test_equals_reads_the_first_segment_of_its_kind(oru: Message) -> None:
    assert field("OBX-5", equals="182").test(oru)
    assert not field("OBX-5", equals="5.1").test(oru)


def test_in_holds_when_the_value_is_one_of_the_list(oru: Message) -> None:
    assert field("MSH-4.1", **{"in": ["LAB-A", "LAB-B"]}).test(oru)
    assert not field("MSH-4.1", **{"in": ["LAB-B", "LAB-C"]}).test(oru)


def test_matches_searches_the_value_with_a_regex(oru: Message) -> None:
    assert field("OBX-6", matches=r"^mg/").test(oru)
    assert field("OBX-6", matches="dl").test(oru)  # a search, not a full match
    assert not field("OBX-6", matches=r"^dl$").test(oru)


def test_exists_tells_an_empty_field_from_a_filled_one(oru: Message, adt: Message) -> None:
    has_results = field("OBX-5", exists=True)
    has_no_results = field("OBX-5", exists=False)
    assert has_results.test(oru)
    assert not has_results.test(adt)  # no OBX segment at all
    assert has_no_results.test(adt)
    assert field("PID-3[2].1", exists=False).test(adt)  # no second repetition


def test_a_missing_segment_equals_the_empty_text(adt: Message) -> None:
    assert field("OBX-3.1", equals="").test(adt)
    assert not field("OBX-3.1", equals="1554-5").test(adt)


def test_a_field_condition_needs_exactly_one_test() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        field("PID-3")
    with pytest.raises(ValidationError, match="exactly one"):
        field("PID-3", equals="x", exists=True)


def test_a_bad_field_path_is_refused() -> None:
    with pytest.raises(ValidationError, match="PID3"):
        field("PID3", exists=True)


def test_a_bad_regex_is_refused() -> None:
    with pytest.raises(ValidationError, match="regular expression"):
        field("PID-3", matches="([")


# -- type_matches ---------------------------------------------------------------------------


def test_type_matches_an_exact_type_and_trigger() -> None:
    assert type_matches("ADT^A01", ("ORU^R01", "ADT^A01"))
    assert not type_matches("ADT^A02", ("ADT^A01",))


def test_type_matches_a_trigger_wildcard_of_the_same_type_only() -> None:
    assert type_matches("ADT^A03", ["ADT^*"])
    assert not type_matches("ORU^R01", ["ADT^*"])
    assert not type_matches("ADTX^A01", ["ADT^*"])


def test_type_matches_anything_with_a_lone_star() -> None:
    assert type_matches("ZAM^Z01", ["*"])


def test_type_matches_nothing_with_no_patterns() -> None:
    assert not type_matches("ADT^A01", [])


# -- Condition ------------------------------------------------------------------------------


def test_an_empty_condition_matches_every_message(oru: Message, adt: Message) -> None:
    assert Condition().test(oru)
    assert Condition().test(adt)
    assert Condition.model_validate({}).test(adt)


def test_message_types_match_msh_9(oru: Message, adt: Message) -> None:
    results_only = Condition(message_types=("ORU^R01",))
    assert results_only.test(oru)
    assert not results_only.test(adt)
    any_adt = Condition(message_types=("ADT^*",))
    assert any_adt.test(adt)
    assert not any_adt.test(oru)


def test_sending_facilities_match_msh_4_first_component(oru: Message, adt: Message) -> None:
    lab = Condition(sending_facilities=("LAB-A",))
    assert lab.test(oru)  # MSH-4 is LAB-A^1.2.250.1.71^ISO
    assert not lab.test(adt)
    assert not Condition(sending_facilities=("LAB-A^1.2.250.1.71^ISO",)).test(oru)


def test_sending_applications_match_msh_3(oru: Message, adt: Message) -> None:
    gam = Condition(sending_applications=("GAM",))
    assert gam.test(adt)
    assert not gam.test(oru)


def test_every_test_of_a_condition_must_hold(oru: Message) -> None:
    glucose_from_lab_a = Condition.model_validate(
        {
            "message_types": ["ORU^R01"],
            "sending_facilities": ["LAB-A"],
            "fields": [
                {"field": "OBX-3.1", "equals": "1554-5"},
                {"field": "OBX-8", "in": ["H", "HH"]},
            ],
        }
    )
    assert glucose_from_lab_a.test(oru)
    other_lab = glucose_from_lab_a.model_copy(update={"sending_facilities": ("LAB-B",)})
    assert not other_lab.test(oru)
    normal_flag = Condition.model_validate(
        {
            "message_types": ["ORU^R01"],
            "fields": [
                {"field": "OBX-3.1", "equals": "1554-5"},
                {"field": "OBX-8", "equals": "N"},
            ],
        }
    )
    assert not normal_flag.test(oru)


def test_a_condition_refuses_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        Condition.model_validate({"message_type": ["ADT^A01"]})
