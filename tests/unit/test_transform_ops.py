"""Each operation of the transform step, on small messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from engine.errors import TransformError
from engine.hl7v2.reader import Message
from engine.transforms.user.steps import TransformStep

ORU = "\r".join(
    [
        "MSH|^~\\&|LAB||DPI|CHU-X|202403061111||ORU^R01^ORU_R01|C-1|P|2.5",
        "PID|1|IPP-7|42^^^CHU-X^PI~1234^^^INS^INS||durand^marie^^^^^L~martin^marie^^^^^D",
        "ZBE|1|X",
        "OBR|1|845^LAB||NFS^Numeration^L",
        "OBX|1|NM|GLY^Glycemie^L||5.1|mmol/l|||||F|||202403061010",
        "OBX|2|NM|CREA^Creatinine^L||80|umol/l|||||F|||202403061010",
        "ZPD|secret",
    ]
)


def run(*ops: dict[str, Any], text: str = ORU) -> Message:
    step = TransformStep.model_validate({"type": "transform", "ops": list(ops)})
    return step.build()(Message(text))


def test_set_writes_a_literal_escaping_delimiters() -> None:
    out = run({"op": "set", "field": "MSH-5", "value": "DMP|A^B"})
    assert out.get("MSH-5") == "DMP|A^B"
    assert out.segment("MSH").field(5) == "DMP\\F\\A\\S\\B"  # type: ignore[union-attr]


def test_set_from_another_field_copies_its_value() -> None:
    out = run({"op": "set", "field": "PID-3[1].1", "from": "PID-2"})
    assert out.get("PID-3[1].1") == "IPP-7"
    assert out.get("PID-3[2].1") == "1234"  # the other repetition untouched


def test_copy_of_a_whole_field_keeps_its_components_and_repetitions() -> None:
    out = run({"op": "copy", "from": "PID-3", "to": "PID-18"})
    assert out.segment("PID").field(18) == "42^^^CHU-X^PI~1234^^^INS^INS"  # type: ignore[union-attr]


def test_move_blanks_the_source() -> None:
    out = run({"op": "move", "from": "PID-2", "to": "PID-4"})
    assert (out.get("PID-2"), out.get("PID-4")) == ("", "IPP-7")


def test_copy_within_every_segment_pairs_each_obx_with_itself() -> None:
    out = run({"op": "copy", "from": "OBX[*]-3.1", "to": "OBX[*]-4"})
    assert [s.get(4) for s in out.all("OBX")] == ["GLY", "CREA"]


def test_delete_blanks_a_component_and_drops_trailing_separators() -> None:
    out = run({"op": "delete", "field": "OBX[*]-3.3"})
    assert [s.field(3) for s in out.all("OBX")] == ["GLY^Glycemie", "CREA^Creatinine"]


def test_delete_segments_by_name_and_by_prefix() -> None:
    assert [s.name for s in run({"op": "delete_segments", "segment": "ZBE"})].count("ZBE") == 0
    names = [s.name for s in run({"op": "delete_segments", "segment": "Z*"})]
    assert names == ["MSH", "PID", "OBR", "OBX", "OBX"]


def test_add_segment_after_the_last_of_a_name_with_its_fields() -> None:
    out = run(
        {"op": "add_segment", "segment": "ZRT", "fields": {"1": "A", "3.2": "b"}, "after": "OBX"}
    )
    assert [s.name for s in out][-2:] == ["ZRT", "ZPD"]
    assert out.segment("ZRT").text == "ZRT|A||^b"  # type: ignore[union-attr]


def test_default_fills_only_an_empty_field() -> None:
    out = run(
        {"op": "default", "field": "MSH-4", "value": "LAB-A"},
        {"op": "default", "field": "MSH-3", "value": "OTHER"},
    )
    assert (out.get("MSH-4"), out.get("MSH-3")) == ("LAB-A", "LAB")


def test_replace_applies_a_regex_to_each_value() -> None:
    out = run({"op": "replace", "field": "OBX[*]-6", "pattern": "^(\\w+)/l$", "with": "\\1/L"})
    assert [s.get(6) for s in out.all("OBX")] == ["mmol/L", "umol/L"]


def test_case_changes_every_repetition_with_a_wildcard() -> None:
    out = run({"op": "case", "field": "PID-5[*].1", "to": "upper"})
    assert (out.get("PID-5[1].1"), out.get("PID-5[2].1")) == ("DURAND", "MARTIN")
    assert out.get("PID-5[1].2") == "marie"


def test_truncate_cuts_each_value() -> None:
    out = run({"op": "truncate", "field": "OBX[*]-3.2", "length": 4})
    assert [s.get(3, 2) for s in out.all("OBX")] == ["Glyc", "Crea"]


def test_date_adds_the_seconds_a_sender_left_out() -> None:
    out = run({"op": "date", "field": "OBX[*]-14", "from": ["%Y%m%d%H%M"], "to": "%Y%m%d%H%M%S"})
    assert [s.get(14) for s in out.all("OBX")] == ["20240306101000"] * 2


def test_date_that_matches_no_format_is_kept_or_dead_letters_without_its_value() -> None:
    op = {"op": "date", "field": "MSH-7", "from": ["%Y-%m-%d"], "to": "%Y%m%d"}
    assert run(op).get("MSH-7") == "202403061111"
    with pytest.raises(TransformError) as caught:
        run(op | {"invalid": "dead_letter"})
    assert "MSH-7" in caught.value.reason and "202403061111" not in caught.value.reason


def test_when_applies_an_operation_only_to_matching_messages() -> None:
    when = {"fields": [{"field": "OBX[*]-3.1", "equals": "CREA"}]}
    assert (
        run({"op": "set", "field": "MSH-5", "value": "RENAL", "when": when}).get("MSH-5") == "RENAL"
    )
    when = {"message_types": ["ADT^*"]}
    assert run({"op": "set", "field": "MSH-5", "value": "X", "when": when}).get("MSH-5") == "DPI"


def test_a_message_no_operation_changes_is_handed_on_as_it_came() -> None:
    msg = Message(ORU)
    step = TransformStep.model_validate(
        {"type": "transform", "ops": [{"op": "default", "field": "MSH-3", "value": "X"}]}
    )
    assert step.build()(msg) is msg


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({"op": "set", "field": "MSH-2", "value": "x"}, "delimiters"),
        ({"op": "set", "field": "PID-3"}, "exactly one of value or from"),
        ({"op": "set", "field": "PID-3", "value": "x", "colour": "red"}, "Extra inputs"),
        ({"op": "frobnicate", "field": "PID-3"}, "does not match any of the expected tags"),
        ({"op": "copy", "from": "OBX[*]-3", "to": "PID-3"}, "the target must be too"),
        ({"op": "copy", "from": "PID-3[*]", "to": "PID-4"}, "names several repetitions"),
        ({"op": "delete", "field": "PID3"}, "bad HL7 field path"),
        ({"op": "replace", "field": "PID-3", "pattern": "(", "with": ""}, "pattern or with"),
        ({"op": "delete_segments", "segment": "MSH"}, "cannot be removed"),
        ({"op": "add_segment", "segment": "ZRT", "fields": {"x": "1"}}, "bad HL7 field path"),
    ],
)
def test_a_bad_operation_is_refused_when_the_configuration_loads(
    op: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        TransformStep.model_validate({"type": "transform", "ops": [op]})
