"""config/channels.schema.json is generated from the models and kept in step with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from engine.channels.schema import channels_schema, render, write_schema

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "config" / "channels.schema.json"


def test_committed_schema_matches_the_models() -> None:
    committed = COMMITTED.read_text(encoding="utf-8")
    assert committed == render(), (
        f"{COMMITTED.relative_to(REPO)} is stale: the channel models changed. "
        "Run `aiguillage schema` and commit the result."
    )


def test_rendered_schema_is_a_draft_2020_12_schema_of_the_channels_file() -> None:
    schema = json.loads(render())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert "channels" in schema["required"]
    assert schema["additionalProperties"] is False


def test_field_conditions_use_the_yaml_spelling_in() -> None:
    """``FieldCondition.one_of`` is written ``in`` in channels.yaml: the schema must say so."""
    condition = channels_schema()["$defs"]["FieldCondition"]["properties"]
    assert "in" in condition
    assert "one_of" not in condition


def test_write_schema_writes_the_rendered_text(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "schema.json"
    write_schema(target)
    assert target.read_text(encoding="utf-8") == render()


def test_repository_channels_file_is_valid_against_the_schema() -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (not a dependency of the project)"
    )
    data = yaml.safe_load((REPO / "channels.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(json.loads(render())).validate(data)


def test_schema_rejects_an_unknown_key() -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (not a dependency of the project)"
    )
    data = yaml.safe_load((REPO / "channels.yaml").read_text(encoding="utf-8"))
    data["channels"][0]["colour"] = "red"
    validator = jsonschema.Draft202012Validator(json.loads(render()))
    assert not validator.is_valid(data)


def test_the_production_profile_is_the_default_channels_with_only_the_safety_settings_changed() -> (
    None
):
    """The profile copies channels.yaml: any other drift between the two is a mistake."""
    default = yaml.safe_load((REPO / "channels.yaml").read_text(encoding="utf-8"))
    production = yaml.safe_load(
        (REPO / "config" / "production.channels.yaml").read_text(encoding="utf-8")
    )
    assert default["engine"]["identity"] == {"accept_test_ins": True}
    assert production["engine"]["identity"] == {"accept_test_ins": False}
    assert (default["engine"]["profile"], production["engine"]["profile"]) == ("demo", "production")
    # The demo makes its key on first start; production has its key made once, on purpose.
    assert default["engine"]["encryption"].pop("create_key") is True
    assert "create_key" not in production["engine"]["encryption"]
    stores = [c["destinations"]["store"] for c in production["channels"]]
    assert len(stores) == 5
    assert all(s["documents"] == {"xsd": "cisis", "cisis_header": True} for s in stores)
    for data in (default, production):
        data["engine"]["identity"] = data["engine"]["profile"] = None
        for channel in data["channels"]:
            channel["destinations"]["store"]["documents"] = None
    assert production == default
