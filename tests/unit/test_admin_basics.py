"""Admin settings, roles, payload segment view, and the runtime-state adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.admin.roles import Principal, Role
from engine.admin.services.messages import payload_view
from engine.admin.state import ServersState
from engine.channels.admin_settings import AdminSettings
from engine.channels.loader import load_channels, parse_channels

REPO = Path(__file__).resolve().parents[2]


def test_the_default_channels_file_serves_the_admin_listener_on_loopback_port_8090() -> None:
    admin = load_channels(REPO / "channels.yaml").engine.admin
    assert admin is not None
    assert (admin.host, admin.port, admin.metrics_without_auth) == ("127.0.0.1", 8090, True)


def test_admin_settings_refuse_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        AdminSettings(host="127.0.0.1", porte=8090)  # type: ignore[call-arg]


def test_each_role_includes_the_ones_below_it_and_only_operators_and_admins_see_payloads() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR) and not Role.OPERATOR.allows(Role.ADMIN)
    seen = {r: Principal("x", r, "token").sees_payloads for r in Role}
    assert seen == {Role.VIEWER: False, Role.OPERATOR: True, Role.ADMIN: True}
    assert Principal("alice", Role.VIEWER, "user").actor == "user:alice"


def test_the_segment_view_splits_on_cr_lf_or_crlf_and_leaves_xml_whole() -> None:
    view = payload_view(b"MSH|^~\\&|A\r\nPID|1\nOBX|1\r", "utf-8", 24)
    assert [(s["index"], s["name"]) for s in view["segments"]] == [
        (1, "MSH"),
        (2, "PID"),
        (3, "OBX"),
    ]
    xml = payload_view(b"<?xml version='1.0'?><ClinicalDocument/>", "xml", 40)
    assert (xml["kind"], xml["segments"]) == ("xml", [])
    latin = payload_view("PID|1||ÉLODIE".encode("latin-1"), "iso-8859-1", 14)
    assert "ÉLODIE" in latin["text"]


@dataclass
class _Inbox:
    channel: str


@dataclass
class _Source:
    inbox: _Inbox

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class _Engine:
    config: object
    servers: list[_Source] = field(default_factory=list)


def test_the_runtime_adapter_reports_started_sources_bound_and_the_others_stopped() -> None:
    config = parse_channels(
        "channels:\n"
        + "".join(
            f"  - name: {n}\n    source: {{type: mllp, port: {p}}}\n    accept: ['*']\n"
            "    destinations: {store: {type: record_store}}\n"
            for n, p in (("a", 3001), ("b", 3002))
        )
    )
    state = ServersState(_Engine(config, [_Source(_Inbox("a"))]))  # type: ignore[arg-type]
    assert [(s.channel, s.state, s.bound) for s in state.sources()] == [
        ("a", "running", True),
        ("b", "stopped", False),
    ]
    assert state.broker_connected() is None
