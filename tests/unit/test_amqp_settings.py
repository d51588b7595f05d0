"""Broker settings: the environment wins over the file, TLS options reach pika, and what logs
show carries no credentials."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.channels.amqp_settings import AmqpConnection, AmqpTls, source_topology


def test_the_environment_variable_wins_and_logs_never_show_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = AmqpConnection(url="amqp://app:file-secret@file-host:5672/%2F")
    assert settings.safe_url() == "amqp://file-host:5672/%2F"
    monkeypatch.setenv("AIGUILLAGE_AMQP_URL", "amqps://app:env-secret@broker.example:5671/lab")
    params = settings.parameters()
    assert (params.host, params.port, params.virtual_host) == ("broker.example", 5671, "lab")
    assert params.credentials.password == "env-secret"
    assert settings.safe_url() == "amqps://broker.example:5671/lab"


def test_tls_settings_become_an_ssl_context_checking_the_broker(tmp_path: Path) -> None:
    ca = ssl.get_default_verify_paths().cafile
    if ca is None:
        pytest.skip("no system CA bundle to load")
    settings = AmqpConnection(
        url="amqps://u:p@broker.example:5671/%2F", tls=AmqpTls(ca_file=ca), url_env="UNSET_X"
    )
    options = settings.parameters().ssl_options
    assert options is not None
    assert options.server_hostname == "broker.example"
    assert options.context.verify_mode == ssl.CERT_REQUIRED
    assert options.context.check_hostname


def test_a_quorum_source_queue_gets_its_delivery_limit_and_dead_letter_queue() -> None:
    topology = source_topology("lab", "quorum", 4, exchange="labs", routing_key="oru")
    [main, dead] = topology.queues
    assert main.arguments == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "lab.dead",
        "x-delivery-limit": 4,
    }
    assert dead.name == "lab.dead"
    assert [(b.queue, b.exchange, b.routing_key) for b in topology.bindings] == [
        ("lab", "labs", "oru"),
        ("lab.dead", "lab.dead", ""),
    ]
    classic = source_topology("lab", "classic", 4)
    assert "x-delivery-limit" not in classic.queues[0].arguments


def test_an_unreadable_url_is_refused_without_being_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError) as caught:
        AmqpConnection(url="amqp://app:pa/ss#word@broker:5672/%2F")
    message = caught.value.errors()[0]["msg"]
    assert "%-encoded" in message and "pa/ss" not in message
    monkeypatch.setenv("AIGUILLAGE_AMQP_URL", "amqp://app:pa/ss@broker:5672/%2F")
    shown = AmqpConnection().safe_url()  # from the environment: unreadable, never raises
    assert "pa/ss" not in shown and "unreadable" in shown
