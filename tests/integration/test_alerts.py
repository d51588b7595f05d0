"""Alerts: rules from channels.yaml evaluated against a real journal (SQLite), fired once and
resolved once, posted to a real local webhook and mailed through a real SMTP server (aiosmtpd),
kept in the history that ``aiguillage alerts`` shows."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sqlalchemy import Engine, insert, update
from typer.testing import CliRunner

from engine.alerts.history import Transition
from engine.alerts.service import AlertService
from engine.channels.config import ChannelsFile
from engine.channels.loader import ConfigError, parse_channels
from engine.cli.main import app
from engine.db import URL_ENV
from engine.journal.message_tables import State, messages
from tests.e2e.engine_process import free_port

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # a Thursday, 11:00 in Paris

CHANNELS = """
engine: {{database_url: "sqlite:///unused.db"}}
channels:
  - name: adt
    source: {{type: mllp, port: 2575}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: lab
    source: {{type: mllp, port: 2576}}
    accept: ["ORU^R01"]
    destinations: {{store: {{type: record_store}}}}
alerts:
  notify:
{notify}
  rules:
{rules}
"""


def config(rules: str, notify: str = "    log: true") -> ChannelsFile:
    return parse_channels(CHANNELS.format(rules=rules, notify=notify))


def add(db: Engine, channel: str, state: State, at: datetime, n: int = 1) -> list[int]:
    """``n`` journal rows of ``channel`` received (and last updated) at ``at``."""
    rows = [
        {
            "channel": channel,
            "received_at": at,
            "updated_at": at,
            "state": state,
            "ack_code": "AA",
            "size": 3,
            "content_hash": f"{channel}-{at.timestamp()}-{i}-{state}",
            "raw": b"MSH",
            "control_id": f"{channel}-{at.timestamp()}-{i}-{state}",
        }
        for i in range(n)
    ]
    with db.begin() as conn:
        return list(conn.execute(insert(messages).returning(messages.c.id), rows).scalars())


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Transition] = []

    def send(self, transition: Transition) -> None:
        self.sent.append(transition)


class Sources:
    def __init__(self, up: dict[str, bool]) -> None:
        self.up = up

    def source_up(self, channel: str) -> bool | None:
        return self.up.get(channel)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server keeping the JSON bodies POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"json": json.loads(body), "auth": self.headers["Authorization"]})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[Envelope] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.mails.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, mailbox
    controller.stop()


DEAD = "    - {type: dead_letters, name: dlq_burst, channels: [lab], count: 2, minutes: 10}"


def test_dead_letters_over_the_limit_fire_once_post_the_webhook_and_resolve_once(
    db: Engine, webhook: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = webhook
    monkeypatch.setenv("AIG_TEST_HOOK_TOKEN", "s3cret")
    notify = f"    log: false\n    webhooks: [{{url: '{url}', token_env: AIG_TEST_HOOK_TOKEN}}]"
    service = AlertService(config(DEAD, notify), db)
    ids = add(db, "lab", State.DEAD_LETTERED, NOW - timedelta(minutes=3), n=3)
    assert [t.kind for t in service.check(NOW)] == ["fired"]
    assert service.check(NOW + timedelta(seconds=30)) == []  # still firing: not again
    with db.begin() as conn:
        conn.execute(update(messages).where(messages.c.id.in_(ids)).values(state=State.DISCARDED))
    assert [t.kind for t in service.check(NOW + timedelta(minutes=1))] == ["resolved"]
    assert service.check(NOW + timedelta(minutes=2)) == []
    assert [r["json"]["status"] for r in received] == ["fired", "resolved"]
    fired = received[0]["json"]
    assert fired["rule"] == "dlq_burst" and fired["channel"] == "lab"
    assert fired["at"] == "2026-12-03T10:00:00Z"
    assert fired["summary"] == "lab: 3 dead letters in 10 min (limit 2)"
    assert received[0]["auth"] == "Bearer s3cret"


def test_an_alert_is_mailed_through_smtp_when_it_fires_and_when_it_resolves(
    db: Engine, smtp: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp
    notify = (
        "    log: false\n    email: {smtp_host: 127.0.0.1, smtp_port: "
        f"{port}, from: aiguillage@chu-x.fr, to: [ops@chu-x.fr, oncall@chu-x.fr]}}"
    )
    rules = "    - {type: waiting, name: held_too_long, state: held, minutes: 60}"
    service = AlertService(config(rules, notify), db)
    [held] = add(db, "lab", State.HELD, NOW - timedelta(hours=2))
    service.check(NOW)
    with db.begin() as conn:
        conn.execute(update(messages).where(messages.c.id == held).values(state="delivered"))
    service.check(NOW + timedelta(minutes=1))
    assert len(mailbox.mails) == 2
    first = message_from_bytes(bytes(mailbox.mails[0].content))  # type: ignore[arg-type]
    assert mailbox.mails[0].rcpt_tos == ["ops@chu-x.fr", "oncall@chu-x.fr"]
    assert first["Subject"] == "[aiguillage] FIRING: held_too_long lab"
    assert "lab: 1 message(s) held for their patient for more than 60 min" in str(
        first.get_payload()
    )
    second = message_from_bytes(bytes(mailbox.mails[1].content))  # type: ignore[arg-type]
    assert second["Subject"] == "[aiguillage] resolved: held_too_long lab"


def test_a_silent_channel_alarms_only_during_its_hours_in_the_engine_time_zone(
    db: Engine,
) -> None:
    rules = (
        "    - {type: silent, name: no_adt, channels: [adt], minutes: 15, "
        "from: '08:00', until: '18:00', days: [mon, tue, wed, thu, fri]}"
    )
    recorder = Recorder()
    service = AlertService(config(rules), db, targets=[recorder])
    add(db, "adt", State.DELIVERED, NOW - timedelta(minutes=20))
    # 07:50 in Paris (06:50 UTC): outside the hours, quiet or not.
    assert service.check(NOW.replace(hour=6, minute=50)) == []
    [fired] = service.check(NOW)  # 11:00 in Paris, 20 minutes without ADT
    assert fired.summary == "adt: none for 20 min (limit 15 min)"
    add(db, "adt", State.DELIVERED, NOW)
    assert [t.kind for t in service.check(NOW + timedelta(minutes=1))] == ["resolved"]
    # Saturday: not watched.
    assert service.check(NOW + timedelta(days=2)) == []


def test_error_rate_source_down_and_journal_size_rules_fire_per_channel(db: Engine) -> None:
    rules = "\n".join(
        (
            "    - {type: error_rate, name: lab_errors, threshold: 0.25, minutes: 15, "
            "min_messages: 4}",
            "    - {type: source_down, name: down}",
            "    - {type: size, name: big_journal, what: journal, max_mb: 0.001}",
        )
    )
    recorder = Recorder()
    sources = Sources({"adt": True, "lab": False})
    service = AlertService(config(rules), db, sources, targets=[recorder])
    add(db, "lab", State.DELIVERED, NOW - timedelta(minutes=5), n=3)
    add(db, "lab", State.RETRYING, NOW - timedelta(minutes=5))
    add(db, "adt", State.DELIVERED, NOW - timedelta(minutes=5), n=10)
    fired = {(t.rule, t.channel): t.summary for t in service.check(NOW)}
    assert fired == {
        ("lab_errors", "lab"): "lab: 1 of 4 messages failing in 15 min (25%, threshold 25%)",
        ("down", "lab"): "lab: source down",
        ("big_journal", ""): fired[("big_journal", "")],
    }
    assert fired[("big_journal", "")].startswith("journal database ")
    sources.up["lab"] = True
    assert [(t.kind, t.rule) for t in service.check(NOW)] == [("resolved", "down")]


def test_the_history_is_listed_by_aiguillage_alerts_with_utc_times_in_json(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = AlertService(config(DEAD), db, targets=[])
    ids = add(db, "lab", State.DEAD_LETTERED, NOW - timedelta(minutes=1), n=3)
    service.check(NOW)
    with db.begin() as conn:
        conn.execute(update(messages).where(messages.c.id.in_(ids)).values(state="discarded"))
    service.check(NOW + timedelta(minutes=5))
    monkeypatch.setenv(URL_ENV, str(db.url))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["alerts", "--json"])
    assert result.exit_code == 0, result.output
    [alert] = json.loads(result.output)
    assert alert["rule"] == "dlq_burst" and alert["channel"] == "lab"
    assert alert["fired_at"] == "2026-12-03T10:00:00Z"
    assert alert["resolved_at"] == "2026-12-03T10:05:00Z"
    table = CliRunner().invoke(app, ["alerts"])
    assert "2026-12-03 11:00:00 CET" in table.output  # local time with its zone
    assert "2026-12-03 11:05:00 CET" in table.output  # resolved


def test_the_scheduler_evaluates_the_rules_once_started(
    db: Engine, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    notify = f"    log: false\n    webhooks: [{{url: '{url}'}}]"
    add(db, "lab", State.DEAD_LETTERED, datetime.now(UTC), n=3)
    service = AlertService(config(DEAD, notify), db)
    service.start()
    try:
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        service.stop()
    assert [r["json"]["status"] for r in received] == ["fired"]


def test_two_services_on_one_journal_fire_an_alert_once(db: Engine) -> None:
    first, second = Recorder(), Recorder()
    add(db, "lab", State.DEAD_LETTERED, NOW, n=3)
    AlertService(config(DEAD), db, targets=[first]).check(NOW)
    AlertService(config(DEAD), db, targets=[second]).check(NOW)
    assert len(first.sent) == 1 and second.sent == []


def test_a_rule_naming_an_unknown_channel_is_refused_at_load_time() -> None:
    rules = "    - {type: silent, name: quiet, channels: [adt, pharmacy], minutes: 15}"
    with pytest.raises(ConfigError) as caught:
        config(rules)
    [issue] = caught.value.issues
    assert issue.key == "alerts.rules[0].channels[1]" and "pharmacy" in issue.message


def test_an_unknown_time_zone_is_refused_at_load_time() -> None:
    with pytest.raises(ConfigError, match="unknown time zone"):
        parse_channels(
            CHANNELS.format(rules="    []", notify="    log: true").replace(
                'database_url: "sqlite:///unused.db"', "timezone: Europe/Pariss"
            )
        )
