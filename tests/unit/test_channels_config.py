"""The channels file loader: every error named with its file, line and key; ``aiguillage check``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.channels.config import FilterStep, ValidateStep
from engine.channels.loader import ConfigError, ConfigIssue, load_channels, parse_channels
from engine.cli import common
from engine.cli.main import app

REPO = Path(__file__).resolve().parents[2]

#: One valid channel; ``{extra}`` adds lines at the end (more keys of the channel, or channels).
BASE = """\
channels:
  - name: lab
    source:
      type: mllp
      port: 2575
    accept: [ORU^R01]
    destinations:
      store:
        type: record_store
{extra}"""

SECOND_CHANNEL = """\
  - name: {name}
    source:
      type: mllp
      port: {port}
    accept: ["*"]
    destinations:
      store:
        type: record_store
"""


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """1-based number of the line holding the ``occurrence``-th ``fragment``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{fragment!r} not in the test text")


def issues_of(text: str, filename: str = "channels.yaml") -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        parse_channels(text, filename)
    return caught.value.issues


def only_issue(text: str) -> ConfigIssue:
    issues = issues_of(text)
    assert len(issues) == 1, "\n".join(str(i) for i in issues)
    return issues[0]


@pytest.fixture
def wide_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps output at 80 columns when not on a terminal: widen it so lines stay whole."""
    monkeypatch.setattr(common.console, "_width", 10_000)
    monkeypatch.setattr(common.err_console, "_width", 10_000)


# -- valid files ---------------------------------------------------------------------------


def test_a_valid_file_loads_into_typed_channels(tmp_path: Path) -> None:
    text = BASE.format(
        extra="""\
    steps:
      - type: validate
      - type: filter
        drop:
          sending_facilities: [TEST]
    routes:
      - when:
          fields:
            - field: OBX-3.1
              in: ["1554-5", "2345-7"]
        to: [store]
"""
    )
    path = tmp_path / "channels.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_channels(path)
    [channel] = config.channels
    assert channel.name == "lab"
    assert channel.source.port == 2575
    assert channel.accept == ("ORU^R01",)
    assert set(channel.destinations) == {"store"}
    assert isinstance(channel.steps[0], ValidateStep)
    assert isinstance(channel.steps[1], FilterStep)
    assert channel.steps[1].drop is not None
    assert channel.steps[1].drop.sending_facilities == ("TEST",)
    [route] = channel.routes
    assert route.to == ("store",)
    assert route.when.fields[0].one_of == ("1554-5", "2345-7")


def test_defaults_apply_when_optional_keys_are_absent() -> None:
    config = parse_channels(BASE.format(extra=""))
    [channel] = config.channels
    assert channel.enabled is True
    assert channel.steps == ()
    assert channel.source.host == "127.0.0.1"
    assert [r.to for r in channel.effective_routes()] == [("store",)]
    assert channel.errors.max_attempts >= 1


def test_the_repository_channels_file_is_valid() -> None:
    config = load_channels(REPO / "channels.yaml")
    assert config.channels
    for channel in config.channels:
        for route in channel.effective_routes():
            assert set(route.to) <= set(channel.destinations)


# -- one error, named with its line and key --------------------------------------------------


def test_unknown_key_is_reported_with_its_line() -> None:
    text = BASE.replace("    accept:", "    colour: red\n    accept:").format(extra="")
    issue = only_issue(text)
    assert issue.line == line_of(text, "colour: red")
    assert issue.key == "channels[0].colour"
    assert "unknown key" in issue.message


def test_unknown_key_in_the_engine_section_is_reported() -> None:
    text = "engine:\n  log_levle: info\n" + BASE.format(extra="")
    issue = only_issue(text)
    assert (issue.line, issue.key) == (2, "engine.log_levle")


def test_wrong_type_is_reported_with_its_line_and_key() -> None:
    text = BASE.replace("port: 2575", "port: lots").format(extra="")
    issue = only_issue(text)
    assert issue.line == line_of(text, "port: lots")
    assert issue.key == "channels[0].source.port"
    assert "integer" in issue.message


def test_out_of_range_value_is_reported() -> None:
    text = BASE.replace("port: 2575", "port: 70000").format(extra="")
    issue = only_issue(text)
    assert (issue.line, issue.key) == (line_of(text, "port: 70000"), "channels[0].source.port")


def test_unknown_destination_type_is_reported_at_the_destination() -> None:
    text = BASE.replace("type: record_store", "type: kafka").format(extra="")
    issue = only_issue(text)
    assert issue.key == "channels[0].destinations.store"
    assert issue.line == line_of(text, "store:")
    assert "kafka" in issue.message


def test_missing_required_key_is_reported_at_its_parent() -> None:
    text = BASE.replace("    accept: [ORU^R01]\n", "").format(extra="")
    issue = only_issue(text)
    assert issue.line == line_of(text, "- name: lab")
    assert issue.key.startswith("channels[0]")
    assert "missing" in issue.message


def test_missing_required_key_is_named() -> None:
    text = BASE.replace("    accept: [ORU^R01]\n", "").format(extra="")
    issue = only_issue(text)
    assert issue.key == "channels[0].accept"


def test_an_error_inside_a_channel_is_not_also_reported_as_an_empty_channel_list() -> None:
    text = BASE.replace("port: 2575", "port: lots").format(extra="")
    assert [i.key for i in issues_of(text)] == ["channels[0].source.port"]


def test_an_empty_channel_list_is_reported() -> None:
    [issue] = issues_of("channels: []\n")
    assert (issue.line, issue.key) == (1, "channels")
    assert "at least 1" in issue.message


def test_a_file_that_is_not_a_mapping_is_reported() -> None:
    issue = only_issue("- lab\n- adt\n")
    assert issue.line == 1
    assert "mapping" in issue.message


def test_route_naming_an_undeclared_destination_is_reported() -> None:
    text = BASE.format(extra="    routes:\n      - to: [store, archive]\n")
    issue = only_issue(text)
    assert issue.key.startswith("channels[0]")
    assert "'archive'" in issue.message
    assert "routes[0]" in issue.message


def test_route_naming_an_undeclared_destination_is_reported_at_the_route() -> None:
    text = BASE.format(extra="    routes:\n      - to: [store, archive]\n")
    issue = only_issue(text)
    assert issue.line == line_of(text, "to: [store, archive]")
    assert issue.key == "channels[0].routes[0].to"


def test_two_channels_on_the_same_port_are_reported() -> None:
    text = BASE.format(extra=SECOND_CHANNEL.format(name="adt", port=2575))
    issue = only_issue(text)
    assert "'lab'" in issue.message
    assert "'adt'" in issue.message
    assert "2575" in issue.message


def test_a_disabled_channel_may_share_a_port() -> None:
    second = SECOND_CHANNEL.format(name="adt", port=2575).replace(
        "    accept:", "    enabled: false\n    accept:"
    )
    config = parse_channels(BASE.format(extra=second))
    assert [c.enabled for c in config.channels] == [True, False]


def test_two_channels_on_the_same_port_are_reported_at_the_second_port() -> None:
    text = BASE.format(extra=SECOND_CHANNEL.format(name="adt", port=2575))
    issue = only_issue(text)
    assert issue.line == line_of(text, "port: 2575", occurrence=2)
    assert issue.key == "channels[1].source.port"


def test_duplicate_channel_names_are_reported() -> None:
    text = BASE.format(extra=SECOND_CHANNEL.format(name="lab", port=2576))
    issue = only_issue(text)
    assert "'lab'" in issue.message
    assert "twice" in issue.message


def test_duplicate_channel_names_are_reported_at_the_second_name() -> None:
    text = BASE.format(extra=SECOND_CHANNEL.format(name="lab", port=2576))
    issue = only_issue(text)
    assert issue.line == line_of(text, "- name: lab", occurrence=2)
    assert issue.key == "channels[1].name"


def test_filter_with_both_keep_and_drop_is_reported_at_the_step() -> None:
    text = BASE.format(
        extra="""\
    steps:
      - type: filter
        keep: {message_types: ["ORU^R01"]}
        drop: {sending_facilities: [TEST]}
"""
    )
    issue = only_issue(text)
    assert issue.line == line_of(text, "- type: filter")
    assert issue.key == "channels[0].steps[0]"
    assert "keep" in issue.message
    assert "drop" in issue.message


def test_filter_with_neither_keep_nor_drop_is_reported() -> None:
    text = BASE.format(extra="    steps:\n      - type: filter\n")
    issue = only_issue(text)
    assert issue.key == "channels[0].steps[0]"


def test_unknown_step_type_is_reported() -> None:
    text = BASE.format(extra="    steps:\n      - type: translate\n")
    issue = only_issue(text)
    assert issue.key == "channels[0].steps[0]"
    assert issue.line == line_of(text, "- type: translate")
    assert "translate" in issue.message


def test_bad_field_path_is_reported_with_its_line() -> None:
    text = BASE.format(
        extra="""\
    routes:
      - to: [store]
        when:
          fields:
            - field: PID3
              equals: x
"""
    )
    issue = only_issue(text)
    assert issue.line == line_of(text, "field: PID3")
    assert issue.key == "channels[0].routes[0].when.fields[0].field"
    assert "PID3" in issue.message


def test_bad_regex_is_reported_with_its_line() -> None:
    text = BASE.format(
        extra="""\
    routes:
      - to: [store]
        when:
          fields:
            - field: OBX-3.1
              matches: "(["
"""
    )
    issue = only_issue(text)
    assert issue.line == line_of(text, 'matches: "(["')
    assert issue.key == "channels[0].routes[0].when.fields[0].matches"
    assert "regular expression" in issue.message


def test_field_condition_with_two_tests_is_reported() -> None:
    text = BASE.format(
        extra="""\
    routes:
      - to: [store]
        when:
          fields:
            - field: OBX-3.1
              equals: x
              exists: true
"""
    )
    issue = only_issue(text)
    assert issue.key == "channels[0].routes[0].when.fields[0]"
    assert issue.line == line_of(text, "- field: OBX-3.1")


def test_duplicate_yaml_key_is_reported_with_its_line() -> None:
    text = BASE.replace("      port: 2575\n", "      port: 2575\n      port: 2576\n").format(
        extra=""
    )
    issue = only_issue(text)
    assert issue.line == line_of(text, "port: 2576")
    assert issue.key == "channels[0].source.port"
    assert "duplicate" in issue.message


def test_yaml_syntax_error_names_its_line() -> None:
    text = "channels:\n  - name: lab\n   source: x\n"
    issue = only_issue(text)
    assert issue.line == 3
    assert "YAML syntax" in issue.message


def test_yaml_syntax_error_in_a_flow_list_names_a_line() -> None:
    text = BASE.replace("accept: [ORU^R01]", "accept: [ORU^R01").format(extra="")
    issue = only_issue(text)
    assert issue.line >= line_of(text, "accept: [ORU^R01")
    assert "YAML syntax" in issue.message


def test_issues_name_the_file_they_were_read_from(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(BASE.replace("port: 2575", "port: lots").format(extra=""), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_channels(path)
    assert caught.value.issues
    assert {i.file for i in caught.value.issues} == {str(path)}
    assert str(caught.value.issues[0]).startswith(f"{path}:5: channels[0].source.port: ")


def test_an_unreadable_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_channels(tmp_path / "absent.yaml")
    [issue] = caught.value.issues
    assert issue.file == str(tmp_path / "absent.yaml")
    assert "cannot read" in issue.message


# -- several errors at once ----------------------------------------------------------------


def test_several_errors_in_one_file_are_all_reported() -> None:
    text = (
        BASE.replace("    accept:", "    colour: red\n    accept:")
        .replace("port: 2575", "port: lots")
        .format(
            extra="""\
    steps:
      - type: filter
        keep: {}
        drop: {}
    routes:
      - to: [store]
        when:
          fields:
            - field: PID3
              equals: x
            - field: OBX-5
              matches: "(["
"""
        )
    )
    found = {(i.line, i.key) for i in issues_of(text)}
    assert {
        (line_of(text, "colour: red"), "channels[0].colour"),
        (line_of(text, "port: lots"), "channels[0].source.port"),
        (line_of(text, "- type: filter"), "channels[0].steps[0]"),
        (line_of(text, "field: PID3"), "channels[0].routes[0].when.fields[0].field"),
        (line_of(text, 'matches: "(["'), "channels[0].routes[0].when.fields[1].matches"),
    } <= found


def test_errors_in_different_channels_are_all_reported() -> None:
    second = SECOND_CHANNEL.format(name="adt", port=2576) + "    routes:\n      - to: [nowhere]\n"
    text = BASE.replace("port: 2575", "port: lots").format(extra=second)
    issues = issues_of(text)
    keys = [i.key for i in issues]
    assert "channels[0].source.port" in keys
    assert any("'nowhere'" in i.message and i.key.startswith("channels[1]") for i in issues)


def test_duplicate_yaml_keys_are_reported_with_validation_errors() -> None:
    text = (
        BASE.replace("      port: 2575\n", "      port: 2575\n      port: 2576\n")
        .replace("    accept:", "    colour: red\n    accept:")
        .format(extra="")
    )
    keys = {i.key for i in issues_of(text)}
    assert {"channels[0].source.port", "channels[0].colour"} <= keys


def test_every_route_naming_an_undeclared_destination_is_reported() -> None:
    text = BASE.format(extra="    routes:\n      - to: [nowhere]\n      - to: [elsewhere]\n")
    messages = " ".join(i.message for i in issues_of(text))
    assert "'nowhere'" in messages
    assert "'elsewhere'" in messages


def test_a_duplicate_name_and_a_port_clash_are_both_reported() -> None:
    extra = SECOND_CHANNEL.format(name="lab", port=2576) + SECOND_CHANNEL.format(
        name="adt", port=2575
    )
    messages = " ".join(i.message for i in issues_of(BASE.format(extra=extra)))
    assert "twice" in messages
    assert "both listen" in messages


# -- aiguillage check ------------------------------------------------------------------------


def test_check_exits_0_on_a_valid_file(tmp_path: Path, wide_output: None) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(BASE.format(extra=""), encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    assert "1 channel" in result.stdout


def test_check_accepts_the_repository_channels_file(wide_output: None) -> None:
    result = CliRunner().invoke(app, ["check", str(REPO / "channels.yaml")])
    assert result.exit_code == 0, result.output


def test_check_exits_1_and_prints_every_error(tmp_path: Path, wide_output: None) -> None:
    text = (
        BASE.replace("    accept:", "    colour: red\n    accept:")
        .replace("port: 2575", "port: lots")
        .format(
            extra="""\
    routes:
      - to: [store]
        when:
          fields:
            - field: PID3
              equals: x
"""
        )
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    expected = [str(i) for i in issues_of(text, str(path))]
    assert len(expected) >= 3
    for line in expected:
        assert line in result.stderr
    assert f"{len(expected)} error(s)" in result.stderr
    assert f"{path}:{line_of(text, 'colour: red')}: channels[0].colour: unknown key" in (
        result.stderr
    )
    assert "valid" not in result.stdout


def test_check_exits_1_on_a_yaml_syntax_error(tmp_path: Path, wide_output: None) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("channels:\n  - name: lab\n   source: x\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3:" in result.stderr


def test_check_prints_each_error_on_one_line_when_not_on_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "a-rather-long-file-name-for-a-channels-configuration.yaml"
    text = BASE.replace("port: 2575", "port: lots").format(extra="")
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    first = str(issues_of(text, str(path))[0])
    assert first in result.stderr.splitlines()


# -- channels receiving CDA documents alone --------------------------------------------------

DOCUMENTS = """\
channels:
  - name: documents
    source: {{type: http, port: 8080}}
    accept: {accept}
{extra}    destinations:
      store: {{type: record_store}}
"""


def test_a_document_channel_routes_by_document_type() -> None:
    text = DOCUMENTS.format(
        accept='["CDA^11502-2", "CDA^REMB"]',
        extra='    routes: [{when: {message_types: ["CDA^REMB"]}, to: [store]}]\n',
    )
    [channel] = parse_channels(text).channels
    assert channel.source.payload == "cda"
    assert channel.accept == ("CDA^11502-2", "CDA^REMB")


@pytest.mark.parametrize(
    ("accept", "extra", "said"),
    [
        ('["ORU^R01"]', "", '"CDA^<type code>"'),
        ('["CDA^*"]', "    steps: [{type: validate}]\n", "validate step checks HL7 v2"),
        (
            '["CDA^*"]',
            "    steps: [{type: filter, keep: {fields: [{field: MSH-4, equals: X}]}}]\n",
            "by message_types (CDA^<type code>) only",
        ),
        (
            '["CDA^*"]',
            "    routes: [{when: {sending_facilities: [LAB]}, to: [store]}]\n",
            "by message_types (CDA^<type code>) only",
        ),
    ],
)
def test_a_document_channel_refuses_what_only_hl7_v2_has(
    accept: str, extra: str, said: str
) -> None:
    issue = only_issue(DOCUMENTS.format(accept=accept, extra=extra))
    assert issue.key == "channels[0]"
    assert said in issue.message
