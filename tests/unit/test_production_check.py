"""The production safety check (``engine.profile: production``): each rule refuses the file at
its line and key, through ``aiguillage check`` and the loader; the demo profile is not checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.channels.loader import ConfigError, parse_channels
from engine.channels.sources import HttpSourceConfig
from engine.cli.main import app

REPO = Path(__file__).resolve().parents[2]

#: A production file that breaks no rule: listeners on loopback, the directory inbox.
CLEAN = """engine:
  profile: production
  identity:
    accept_test_ins: false
channels:
  - name: hospital
    source:
      type: mllp
      host: 127.0.0.1
      port: 2575
    accept: ["ADT^*"]
    destinations: {store: {type: record_store}}
  - name: inbox
    source: {type: directory, path: var/inbox}
    accept: ["CDA^*"]
    destinations: {store: {type: record_store}}
"""

HTTP = """  - name: documents
    source:
      type: http
      host: 127.0.0.1
      port: 8081
    accept: ["CDA^*"]
    destinations: {store: {type: record_store}}
"""


def problems(text: str) -> list[tuple[int, str, str]]:
    """(line, key, message) of each problem the loader reports; [] when the file loads."""
    try:
        parse_channels(text, "prod.yaml")
    except ConfigError as exc:
        return [(i.line, i.key, i.message) for i in exc.issues]
    return []


def test_a_clean_production_file_passes_the_check(tmp_path: Path) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text(CLEAN)
    result = CliRunner().invoke(app, ["check", "--offline", str(path)])
    assert result.exit_code == 0, result.output
    assert "production safety check passed" in result.output


def test_a_production_listener_beyond_loopback_without_tls_fails_at_its_host_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text(CLEAN.replace("host: 127.0.0.1", "host: 0.0.0.0"))
    result = CliRunner().invoke(app, ["check", "--offline", str(path)])
    assert result.exit_code == 1
    assert f"{path}:9: channels[0].source.host: listens on 0.0.0.0 without TLS" in result.output


def test_a_production_file_accepting_test_ins_fails_at_its_line() -> None:
    text = CLEAN.replace("accept_test_ins: false", "accept_test_ins: true")
    [(line, key, message)] = problems(text)
    assert (line, key) == (4, "engine.identity.accept_test_ins")
    assert "no test or demo INS" in message


@pytest.mark.skipif(
    "auth" not in HttpSourceConfig.model_fields, reason="the HTTP source has no auth yet"
)
def test_a_production_http_source_without_authentication_fails_at_its_source() -> None:
    text = CLEAN + HTTP.replace("port: 8081", "port: 8081\n      auth: none")
    [(line, key, message)] = problems(text)
    assert (line, key) == (22, "channels[2].source.auth")  # the auth: none line
    assert "authenticates no sender" in message
    assert problems(CLEAN + HTTP) == []  # tokens by default


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = CLEAN.replace("accept_test_ins: false", "accept_test_ins: true").replace(
        "host: 127.0.0.1", "host: 10.1.2.3"
    )
    assert [(line, key) for line, key, _ in problems(text)] == [
        (4, "engine.identity.accept_test_ins"),
        (9, "channels[0].source.host"),
    ]


def test_a_listener_on_localhost_or_ipv6_loopback_needs_no_tls() -> None:
    for host in ("localhost", "::1", "127.0.0.2"):
        assert problems(CLEAN.replace("host: 127.0.0.1", f'host: "{host}"')) == []


def test_a_disabled_channel_is_not_checked() -> None:
    text = CLEAN.replace("host: 127.0.0.1", "host: 0.0.0.0").replace(
        "  - name: hospital\n", "  - name: hospital\n    enabled: false\n"
    )
    assert problems(text) == []


def test_the_demo_profile_is_not_checked() -> None:
    text = CLEAN.replace("profile: production", "profile: demo")
    text = text.replace("accept_test_ins: false", "accept_test_ins: true")
    assert problems(text.replace("host: 127.0.0.1", "host: 0.0.0.0")) == []


def test_the_repositorys_production_file_sets_the_production_profile() -> None:
    text = (REPO / "config" / "production.channels.yaml").read_text(encoding="utf-8")
    assert "\n  profile: production" in text


@pytest.mark.skipif(
    "auth" not in HttpSourceConfig.model_fields, reason="the HTTP source has no auth yet"
)
def test_the_repositorys_production_file_passes_the_check() -> None:
    result = CliRunner().invoke(
        app, ["check", "--offline", str(REPO / "config" / "production.channels.yaml")]
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("listener", ["admin", "record_api"])
def test_a_console_or_record_listener_beyond_loopback_without_tls_fails_at_its_host(
    listener: str,
) -> None:
    text = CLEAN.replace(
        "  profile: production\n", f"  profile: production\n  {listener}:\n    host: 0.0.0.0\n"
    )
    [(line, key, message)] = problems(text)
    assert (line, key) == (4, f"engine.{listener}.host")
    assert "without TLS" in message
    assert problems(text.replace("0.0.0.0", "127.0.0.1")) == []
