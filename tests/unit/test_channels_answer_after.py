"""``answer_after`` and ``answer_timeout_seconds``: one name on every source that answers,
the older names (``ack_after`` on MLLP, ``respond_after`` on HTTP) still read, with one
warning at load."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from engine.channels import loader
from engine.channels.loader import ConfigError, parse_channels
from engine.channels.sources import HttpSourceConfig, MllpSourceConfig

CHANNELS = """
channels:
  - name: adt
    source: {{type: mllp, port: 2575, {mllp}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: docs
    source: {{type: http, port: 8081, auth: none, {http}}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
"""


@pytest.fixture(autouse=True)
def default_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """structlog as it is before the engine configures it, and a new logger for the loader:
    an earlier test that ran the engine may have left a level filter above ``warning`` and a
    logger cached on first use, both of which would keep the warning from ``capture_logs``."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    monkeypatch.setattr(loader, "log", structlog.get_logger("engine.config"))
    yield
    structlog.configure(**saved)


def test_the_old_names_are_read_as_answer_after_with_one_warning_naming_each_key() -> None:
    text = CHANNELS.format(
        mllp="ack_after: processing, ack_timeout_seconds: 4",
        http="respond_after: processing, respond_timeout_seconds: 6",
    )
    with capture_logs() as logs:
        config = parse_channels(text, "channels.yaml")
    mllp, http = (c.source for c in config.channels)
    assert isinstance(mllp, MllpSourceConfig) and isinstance(http, HttpSourceConfig)
    assert (mllp.answer_after, mllp.answer_timeout_seconds) == ("processing", 4)
    assert (http.answer_after, http.answer_timeout_seconds) == ("processing", 6)
    warnings = [e for e in logs if e["event"] == "config_deprecated_keys"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["keys"] == [
        "channels.yaml:4: channels[0].source.ack_after (now answer_after)",
        "channels.yaml:4: channels[0].source.ack_timeout_seconds (now answer_timeout_seconds)",
        "channels.yaml:8: channels[1].source.respond_after (now answer_after)",
        "channels.yaml:8: channels[1].source.respond_timeout_seconds (now answer_timeout_seconds)",
    ]


def test_the_new_name_loads_without_a_warning() -> None:
    text = CHANNELS.format(mllp="answer_after: processing", http="answer_after: commit")
    with capture_logs() as logs:
        config = parse_channels(text)
    assert [c.source.answer_after for c in config.channels] == ["processing", "commit"]  # type: ignore[union-attr]
    assert not [e for e in logs if e["event"] == "config_deprecated_keys"]


def test_an_old_name_beside_its_new_name_is_an_error() -> None:
    text = CHANNELS.format(mllp="ack_after: processing, answer_after: commit", http="path: /d")
    with pytest.raises(ConfigError, match="'ack_after' is the old name of 'answer_after'"):
        parse_channels(text)


def test_an_old_name_is_only_read_on_the_source_that_had_it() -> None:
    text = CHANNELS.format(mllp="respond_after: processing", http="path: /d")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_channels(text)
