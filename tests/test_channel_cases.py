"""Channel tests written as data (tests/channels/*.yaml), run by engine.channeltest."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.channeltest import run_case_file
from engine.cli.main import app

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASES_DIR = HERE / "channels"
CASE_FILES = sorted(p for p in CASES_DIR.glob("*.yaml") if not p.name.endswith(".channels.yaml"))

# The result's patient is registered first: a result for an unknown patient would be held.
REGISTRATION = """\
          MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306101154||ADT^A28^ADT_A05|A28-1|P|2.5
          EVN|A28|20240306101154
          PID|1||000003^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F
"""
GOOD_ORU = """\
          MSH|^~\\&|LABO|LAB-A|DPI|CHU-X|20240306111154||ORU^R01^ORU_R01|ORU-1|P|2.5
          PID|1||000003^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F
          OBR|1|845439^LABO|986^LABO|24323-8^Bilan^LN|||20240306101010
          OBX|1|NM|1554-5^Glucose^LN||182|mg/dl|70-105|H|||F
"""


def case_file(tmp_path: Path, expect: str, name: str = "wrong.yaml") -> Path:
    """A one-case file for the repository's channels.yaml, with the given ``expect`` block:
    a patient registration (ADT^A28) then a result for that patient."""
    path = tmp_path / name
    path.write_text(
        f"channels: {REPO / 'channels.yaml'}\n"
        "channel: hospital_hl7\n"
        "cases:\n"
        "  - name: a result\n"
        "    messages:\n"
        "      - hl7: |\n"
        f"{REGISTRATION}"
        "      - hl7: |\n"
        f"{GOOD_ORU}"
        "    expect:\n"
        f"{expect}",
        encoding="utf-8",
    )
    return path


def test_case_files_are_found() -> None:
    assert {p.name for p in CASE_FILES} >= {"hospital.yaml", "filters.yaml"}
    assert all(not p.name.endswith(".channels.yaml") for p in CASE_FILES)


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_channel_cases_hold(path: Path) -> None:
    results = run_case_file(path)
    assert results, f"{path.name} ran no case"
    failures = [
        f"{r.name}:\n" + "\n".join(f"    {p}" for p in r.problems) for r in results if not r.ok
    ]
    assert not failures, f"{path.name}:\n" + "\n".join(failures)


def test_a_correct_expectation_reports_no_problem(tmp_path: Path) -> None:
    path = case_file(
        tmp_path,
        "      acks: [AA, AA]\n"
        "      states: [delivered, delivered]\n"
        "      counts: {store_patients: 1, store_observations: 1}\n"
        "      rows:\n"
        "        - table: store_observations\n"
        "          where: {code: '1554-5'}\n"
        "          values: {value: '182'}\n",
        name="right.yaml",
    )
    [result] = run_case_file(path)
    assert result.ok, result.problems


def test_a_wrong_expectation_makes_the_runner_report_each_problem(tmp_path: Path) -> None:
    path = case_file(
        tmp_path,
        "      acks: [AA, AR]\n"
        "      states: [delivered, dead_lettered]\n"
        "      dead_letters: [{code: parse_error}]\n"
        "      counts: {store_observations: 5}\n"
        "      rows:\n"
        "        - table: store_observations\n"
        "          where: {code: '1554-5'}\n"
        "          values: {value: '999'}\n"
        "        - table: store_observations\n"
        "          where: {code: 'no-such-code'}\n",
    )
    [result] = run_case_file(path)
    assert not result.ok
    text = "\n".join(result.problems)
    assert "ACK codes: expected ['AA', 'AR'], got ['AA', 'AA']" in text
    assert "states: expected ['delivered', 'dead_lettered'], got ['delivered', 'delivered']" in text
    assert "dead letters" in text
    assert "store_observations: expected 5 rows, got 1" in text
    assert "value is '182', expected '999'" in text
    assert "no row where {'code': 'no-such-code'}" in text
    assert len(result.problems) == 6


def test_a_case_file_naming_an_unknown_channel_reports_it(tmp_path: Path) -> None:
    path = case_file(tmp_path, "      acks: [AA]\n")
    path.write_text(
        path.read_text(encoding="utf-8").replace("hospital_hl7", "nope"), encoding="utf-8"
    )
    [result] = run_case_file(path)
    assert not result.ok
    assert "no channel 'nope'" in result.problems[0]


def test_a_row_expectation_may_say_no_row_matches(tmp_path: Path) -> None:
    path = case_file(
        tmp_path,
        "      rows:\n"
        "        - table: store_observations\n"
        "          where: {code: 'no-such-code'}\n"
        "          count: 0\n",
    )
    [result] = run_case_file(path)
    assert result.ok, result.problems


def test_the_test_command_exits_0_when_every_case_holds() -> None:
    result = CliRunner().invoke(app, ["test", str(CASES_DIR / "hospital.yaml")])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.stdout


def test_the_test_command_exits_1_and_shows_the_problem_when_a_case_fails(
    tmp_path: Path,
) -> None:
    path = case_file(tmp_path, "      acks: [AA, AR]\n")
    result = CliRunner().invoke(app, ["test", str(path)])
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert "ACK codes: expected ['AA', 'AR'], got ['AA', 'AA']" in result.stdout


def readme_example() -> str:
    """The channel test shown in README's "Channel tests as data" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Channel tests as data") :]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_passes_against_the_default_channels(tmp_path: Path) -> None:
    example = readme_example().replace("../../channels.yaml", str(REPO / "channels.yaml"))
    path = tmp_path / "readme.yaml"
    path.write_text(example, encoding="utf-8")
    results = run_case_file(path)
    assert [(r.name, r.problems) for r in results] == [(results[0].name, [])]


def test_the_cli_skips_files_that_are_not_cases_and_ends_with_a_summary(tmp_path: Path) -> None:
    good = case_file(tmp_path, "      acks: [AA, AA]\n      states: [delivered, delivered]\n")
    result = CliRunner().invoke(app, ["test", str(REPO / "channels.yaml"), str(good)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 0, result.output
    assert lines[0] == f"skip {REPO / 'channels.yaml'}: not a channel test file"
    assert lines[-1] == "1 passed, 0 failed, 1 file(s) skipped"
    assert not any(line.startswith("{") for line in lines)  # no engine log line among them
