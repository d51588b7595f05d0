"""The container files: the image's channels.yaml still loads, and compose.yaml describes the
distributed deployment with the settings the engine reads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from engine.channels.amqp_settings import AmqpConnection
from engine.channels.loader import parse_channels

REPO = Path(__file__).resolve().parents[2]


def test_the_images_channels_file_is_valid_and_listens_on_every_interface() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    [script] = re.findall(r"sed -i '([^']+)' channels\.yaml", dockerfile)
    text = (REPO / "channels.yaml").read_text()
    for command in script.split("; "):
        _, old, new, _ = command.split("#")
        assert old in text, f"the Dockerfile replaces {old!r}, which channels.yaml lacks"
        text = text.replace(old, new)
    config = parse_channels(text)
    hosts = {c.source.host for c in config.channels if hasattr(c.source, "host")}
    assert hosts == {"0.0.0.0"}
    assert config.engine.database_url == "sqlite:////data/aiguillage.db"
    paths = [str(c.source.path) for c in config.channels if c.source.type == "directory"]
    assert paths and all(p.startswith("/data/") for p in paths)
    # The demo's record key lives on the volume too (made 0700 for the image's user).
    assert config.engine.encryption is not None
    assert str(config.engine.encryption.key_file) == "/data/keys/record.key"
    assert "chmod 700 /data/keys" in dockerfile


def test_compose_runs_an_intake_two_workers_rabbitmq_and_postgresql() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"intake", "worker", "postgres", "rabbitmq"}
    assert services["intake"]["command"][-2:] == ["--role", "intake"]
    assert services["worker"]["command"][-2:] == ["--role", "worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("intake", "worker"):
        env = services[name]["environment"]
        assert env["AIGUILLAGE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert AmqpConnection().url_env in env
        assert set(services[name]["depends_on"]) == {"postgres", "rabbitmq"}
        assert "keys:/data/keys" in services[name]["volumes"]  # one key for all of them
