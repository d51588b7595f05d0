"""Console sessions on a real socket: login, CSRF, lockout, logout; channel control."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine, select

from engine.admin.roles import Role
from engine.admin.state import ReloadOutcome, UnknownChannel
from engine.admin.tables import audit
from engine.channels.admin_settings import AdminSettings
from engine.journal.message_tables import State
from tests.integration import admin_seed as seed
from tests.integration.admin_harness import PASSWORD, Admin, config, serve


@contextmanager
def browser(admin: Admin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin.url, timeout=10) as client:
        yield client


def login(admin: Admin, name: str, password: str = PASSWORD) -> httpx.Response:
    with browser(admin) as client:
        return signed_in(client, name, password)


def signed_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return client.post(
        "/login", data={"name": name, "password": password, "csrf_token": token.group(1)}
    )


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def actions(db: Engine) -> list[tuple[str, str]]:
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(select(audit.c.actor, audit.c.action))]  # type: ignore[misc]


def test_login_opens_a_session_whose_dashboard_lists_the_channels(db: Engine) -> None:
    with serve(db) as admin, ExitStack() as stack:
        assert httpx.get(admin.url + "/").headers["location"] == "/login"
        client = stack.enter_context(browser(admin))
        answer = signed_in(client, "viewer")
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = client.get("/")
        assert page.status_code == 200
        assert "lab" in page.text and "quiet" in page.text and "viewer (viewer)" in page.text
        assert client.get("/api/v1/channels").status_code == 200
    assert ("user:viewer", "login") in actions(db)


def test_a_login_form_without_its_token_is_refused(db: Engine) -> None:
    with serve(db) as admin:
        answer = httpx.post(
            admin.url + "/login", data={"name": "admin", "password": PASSWORD, "csrf_token": "x"}
        )
        assert answer.status_code == 403
        assert "aiguillage_session" not in answer.headers.get("set-cookie", "")


def test_the_account_locks_after_repeated_failures_even_for_the_right_password(
    db: Engine,
) -> None:
    settings = AdminSettings(host="127.0.0.1", port=0, max_failed_logins=3)
    with serve(db, config(settings)) as admin:
        for _ in range(3):
            assert login(admin, "operator", "wrong password").status_code == 401
        assert login(admin, "operator").status_code == 401  # locked
        assert login(admin, "admin").status_code == 303  # others are not
    assert actions(db).count(("user:operator", "login_failed")) == 4


def test_a_session_post_needs_the_sessions_csrf_token(db: Engine) -> None:
    dead = seed.message(db, "D1", state=State.DEAD_LETTERED, error_code="x")
    body = {"ids": [dead], "reason": "fixed"}
    with serve(db) as admin, browser(admin) as client:
        signed_in(client, "operator")
        token = csrf_of(client.get("/").text)
        assert client.post("/api/v1/dead-letters/replay", json=body).status_code == 403
        refused = client.post(
            "/api/v1/dead-letters/replay", json=body, headers={"X-CSRF-Token": "forged"}
        )
        assert refused.status_code == 403
        done = client.post(
            "/api/v1/dead-letters/replay", json=body, headers={"X-CSRF-Token": token}
        )
        assert done.json()["replayed"] == [dead]
    assert ("user:operator", "replay") in actions(db)


def test_logout_ends_the_session_for_good(db: Engine) -> None:
    with serve(db) as admin, browser(admin) as client:
        signed_in(client, "admin")
        cookie = client.cookies["aiguillage_session"]
        token = csrf_of(client.get("/").text)
        assert client.post("/logout", data={"csrf_token": "nope"}).status_code == 403
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
        replayed = httpx.get(admin.url + "/api/v1/channels", cookies={"aiguillage_session": cookie})
        assert replayed.status_code == 401
    assert ("user:admin", "logout") in actions(db)


@dataclass
class Control:
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def pause(self, channel: str) -> None:
        self._do("pause", channel)

    async def resume(self, channel: str) -> None:
        self._do("resume", channel)

    async def restart(self, channel: str) -> None:
        self._do("restart", channel)

    async def reload(self) -> ReloadOutcome:
        self.calls.append(("reload", ""))
        return ReloadOutcome(unchanged=("quiet",), restarted=("lab",))

    def _do(self, action: str, channel: str) -> None:
        if channel not in ("lab", "quiet"):
            raise UnknownChannel(channel)
        self.calls.append((action, channel))


def test_channel_control_is_for_admins_audited_and_501_without_a_runtime(db: Engine) -> None:
    control = Control()
    with serve(db, control=control) as admin:
        post = lambda path, role: httpx.post(  # noqa: E731
            admin.url + path, headers=admin.bearer(role), json={"reason": "maintenance"}
        )
        assert post("/api/v1/channels/lab/pause", Role.OPERATOR).status_code == 403
        assert post("/api/v1/channels/lab/pause", Role.ADMIN).json()["done"] is True
        assert post("/api/v1/channels/lab/resume", Role.ADMIN).status_code == 200
        assert post("/api/v1/channels/nope/restart", Role.ADMIN).status_code == 404
        assert post("/api/v1/reload", Role.ADMIN).json()["restarted"] == ["lab"]
    assert control.calls == [("pause", "lab"), ("resume", "lab"), ("reload", "")]
    assert [a for a in actions(db) if a[1] in ("pause", "resume", "restart", "reload")] == [
        ("token:admin-token", "pause"),
        ("token:admin-token", "resume"),
        ("token:admin-token", "restart"),
        ("token:admin-token", "reload"),
    ]
    with serve(db) as admin:
        answer = httpx.post(admin.url + "/api/v1/reload", headers=admin.bearer(Role.ADMIN))
        assert answer.status_code == 501


def test_the_api_docs_and_their_assets_are_served_by_the_listener_itself(db: Engine) -> None:
    with serve(db) as admin:
        page = httpx.get(admin.url + "/api/docs").text
        assert "cdn" not in page.lower()
        assets = re.findall(r'(?:src|href)="(/api/docs/assets/[^"]+)"', page)
        assert assets and all(httpx.get(admin.url + a).status_code == 200 for a in assets)
        paths = httpx.get(admin.url + "/api/openapi.json").json()["paths"]
        assert {"/api/v1/messages", "/api/v1/dead-letters/replay", "/api/v1/audit"} <= set(paths)
