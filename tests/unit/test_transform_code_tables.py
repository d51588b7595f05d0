"""Code tables: CSV and YAML, checked at load, and the three unmapped policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.hl7v2.reader import Message
from engine.transforms.user.code_tables import TableError, load_table
from engine.transforms.user.errors import UnmappedCode
from engine.transforms.user.steps import TransformStep

REPO = Path(__file__).resolve().parents[2]
LAB_CODES = REPO / "config" / "maps" / "lab_codes.csv"
ORU = "\r".join(
    [
        "MSH|^~\\&|LAB|LAB-A|DPI|CHU-X|202403061111||ORU^R01^ORU_R01|C-1|P|2.5",
        "PID|1||42^^^CHU-X^PI||DURAND^MARIE|||F",
        "OBX|1|NM|GLY^Glycemie^L||5.1|mmol/L",
        "OBX|2|NM|XYZ^Inconnu^L||1|",
        "OBX|3|NM|CREA^Creatinine^L||80|umol/L",
    ]
)


def mapped(unmapped: Any, table: Path = LAB_CODES, field: str = "OBX[*]-3") -> Message:
    op = {"op": "map", "field": field, "table": str(table), "unmapped": unmapped}
    return TransformStep.model_validate({"type": "transform", "ops": [op]}).build()(Message(ORU))


def test_a_mapped_coded_field_takes_the_loinc_code_name_and_system() -> None:
    out = mapped("keep")
    assert out.all("OBX")[0].field(3) == "2345-7^Glucose [Mass/volume] in Serum or Plasma^LN"
    assert out.all("OBX")[2].field(3) == "2160-0^Creatinine [Mass/volume] in Serum or Plasma^LN"


def test_unmapped_keep_leaves_the_code_as_it_came() -> None:
    assert mapped("keep").all("OBX")[1].field(3) == "XYZ^Inconnu^L"


def test_unmapped_default_writes_the_default_code() -> None:
    assert mapped({"default": "UNK"}).all("OBX")[1].field(3) == "UNK^Inconnu^L"


def test_unmapped_dead_letter_names_the_segment_the_code_and_the_table() -> None:
    with pytest.raises(UnmappedCode) as caught:
        mapped("dead_letter")
    assert caught.value.code == "unmapped_code"
    assert caught.value.reason == f"OBX[2]-3: code 'XYZ' is not in code table {LAB_CODES}"


def test_an_unmapped_pid_value_is_not_quoted_in_the_reason(tmp_path: Path) -> None:
    table = tmp_path / "sex.yaml"
    table.write_text("M: male\n", encoding="utf-8")
    with pytest.raises(UnmappedCode) as caught:
        mapped("dead_letter", table, "PID-8")
    assert "'F'" not in caught.value.reason and "PID[1]-8: a code" in caught.value.reason


def test_a_component_path_maps_that_component_only(tmp_path: Path) -> None:
    table = tmp_path / "units.csv"
    table.write_text("from,to\nmmol/L,mmol/l\n", encoding="utf-8")
    out = mapped("keep", table, "OBX[*]-6.1")
    assert [s.get(6) for s in out.all("OBX")] == ["mmol/l", "", "umol/L"]


def test_a_yaml_list_table_loads_with_its_columns(tmp_path: Path) -> None:
    table = tmp_path / "t.yaml"
    table.write_text("- {from: A, to: B, to_system: LN}\n", encoding="utf-8")
    loaded = load_table(table)
    assert loaded.get("A") is not None and loaded.has_system and not loaded.has_text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("from,to\nGLY,1\nGLY,2\n", "t.csv:3: code 'GLY' is already mapped"),
        ("from,to,to_sytem\nA,B,C\n", "unknown column 'to_sytem'"),
        ("to,to_text\nA,B\n", "needs a 'from' column"),
        ("from,to\nA,\n", "t.csv:2: 'from' and 'to' must not be empty"),
    ],
)
def test_a_bad_table_is_an_error_naming_its_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    table = tmp_path / "t.csv"
    table.write_text(content, encoding="utf-8")
    with pytest.raises(TableError, match=message):
        load_table(table)


def test_a_missing_table_is_refused_when_the_configuration_loads(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        mapped("keep", tmp_path / "nope.csv")


def test_a_changed_table_file_is_read_again(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("from,to\nA,B\n", encoding="utf-8")
    assert load_table(table).get("A") is not None
    table.write_text("from,to\nA,B\nC,D\n", encoding="utf-8")
    assert load_table(table).get("C") is not None


def test_the_shipped_lab_table_maps_every_code_of_the_bench_oru_to_loinc() -> None:
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    from generate import PANELS  # type: ignore[import-not-found]

    targets = {t.code for t in load_table(LAB_CODES).entries.values()}
    bench = {code for code, _, analytes in PANELS for code in [code, *(a.loinc for a in analytes)]}
    assert bench == targets
