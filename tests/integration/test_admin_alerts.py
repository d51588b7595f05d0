"""The alerts' history on the admin listener: the API (every role) and the console's page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, insert

from engine.admin.roles import Role
from engine.alerts.tables import alerts
from tests.integration.admin_harness import Admin, serve
from tests.integration.test_admin_console import signed_in


@pytest.fixture
def admin(db: Engine) -> Iterator[Admin]:
    now = datetime.now(UTC)
    with db.begin() as conn:
        conn.execute(
            insert(alerts),
            [
                {
                    "rule": "no_adt",
                    "channel": "adt",
                    "fired_at": now - timedelta(hours=2),
                    "resolved_at": now - timedelta(hours=1),
                    "summary": "no message for 15 min",
                    "resolution": "messages again",
                },
                {
                    "rule": "dead_letters",
                    "channel": "lab",
                    "fired_at": now,
                    "summary": "12 dead letters in 10 min",
                    "resolved_at": None,
                    "resolution": None,
                },
            ],
        )
    with serve(db) as running:
        yield running


def test_the_api_lists_alerts_newest_first_and_the_open_ones_alone(admin: Admin) -> None:
    url = admin.url + "/api/v1/alerts"
    assert httpx.get(url, timeout=10).status_code == 401
    every = httpx.get(url, headers=admin.bearer(Role.VIEWER), timeout=10).json()
    assert [(a["rule"], a["resolved_at"] is None) for a in every] == [
        ("dead_letters", True),
        ("no_adt", False),
    ]
    open_only = httpx.get(url, params={"open_only": "true"}, headers=admin.bearer(Role.VIEWER))
    assert [a["rule"] for a in open_only.json()] == ["dead_letters"]


def test_the_console_shows_the_history_with_what_is_still_open(admin: Admin) -> None:
    with httpx.Client(base_url=admin.url, timeout=10) as client:
        assert client.get("/alerts").status_code in (302, 303, 307)  # to the login
        assert signed_in(client, Role.VIEWER.value).status_code == 303
        page = client.get("/alerts").text
    assert page.index("12 dead letters in 10 min") < page.index("no message for 15 min")
    assert "<strong>open</strong>" in page and "messages again" in page
