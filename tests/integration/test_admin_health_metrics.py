"""/healthz, /readyz and /metrics on a real socket."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from engine import metrics as engine_metrics
from engine.admin.roles import Role
from engine.admin.state import StaticSource, StaticState
from engine.channels.admin_settings import AdminSettings
from engine.journal.message_tables import State, messages
from tests.integration import admin_seed as seed
from tests.integration.admin_harness import config, serve

FRESH = AdminSettings(host="127.0.0.1", port=0, metrics_refresh_seconds=0.01)


def scrape(url: str, **kw: object) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    answer = httpx.get(url + "/metrics", timeout=10, **kw)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_parse_and_count_the_journal_per_channel_and_state(db: Engine) -> None:
    old = datetime.now(UTC) - timedelta(minutes=10)
    seed.message(db, "M1")
    seed.message(db, "M2", state=State.HELD, received_at=old)
    seed.message(db, "M3", state=State.DEAD_LETTERED, error_code="x")
    state = StaticState([StaticSource("lab"), StaticSource("quiet", "failed", bound=False)])
    engine_metrics.ACK_LATENCY.labels("lab").observe(0.002)
    with serve(db, config(FRESH), state) as admin:
        m = scrape(admin.url)
    total = m["aiguillage_messages_total"]
    assert total[(("channel", "lab"), ("state", "delivered"))] == 1
    assert total[(("channel", "lab"), ("state", "dead_lettered"))] == 1
    depth = m["aiguillage_queue_depth"]
    assert depth[(("channel", "lab"), ("state", "held"))] == 1
    assert depth[(("channel", "quiet"), ("state", "received"))] == 0  # no traffic, still listed
    assert m["aiguillage_dead_letters"][(("channel", "lab"),)] == 1
    oldest = m["aiguillage_oldest_waiting_seconds"][(("channel", "lab"), ("state", "held"))]
    assert 590 < oldest < 700
    assert m["aiguillage_source_up"] == {(("channel", "lab"),): 1.0, (("channel", "quiet"),): 0.0}
    assert m["aiguillage_ack_latency_seconds_count"][(("channel", "lab"),)] >= 1
    assert "aiguillage_journal_commit_seconds_count" in m


def test_metrics_need_credentials_when_the_setting_says_so(db: Engine) -> None:
    closed = AdminSettings(host="127.0.0.1", port=0, metrics_without_auth=False)
    with serve(db, config(closed)) as admin:
        assert httpx.get(admin.url + "/metrics").status_code == 401
        assert "aiguillage_queue_depth" in scrape(admin.url, headers=admin.bearer(Role.VIEWER))


def test_healthz_answers_while_readyz_gives_503_with_each_reason(db: Engine) -> None:
    state = StaticState(
        [StaticSource("lab"), StaticSource("quiet", "failed", bound=False)], broker=False
    )
    with serve(db, config(), state) as admin:
        assert httpx.get(admin.url + "/healthz").json() == {"status": "alive"}
        ready = httpx.get(admin.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["reasons"] == [
            "channel quiet: source not bound (failed)",
            "broker: not connected",
        ]
        state.source_list[1] = StaticSource("quiet")
        state.broker = True
        assert httpx.get(admin.url + "/readyz").status_code == 200


def test_readyz_gives_503_when_the_journal_cannot_take_a_write(db: Engine) -> None:
    with serve(db, config()) as admin:
        with db.connect() as conn:  # another writer holds the lock past the probe's timeout
            conn.begin()  # BEGIN IMMEDIATE (engine.db)
            ready = httpx.get(admin.url + "/readyz", timeout=10)
            conn.rollback()
        assert ready.status_code == 503
        assert ready.json()["reasons"] == ["journal: no write lock within 2 s"]


def test_snapshots_between_full_counts_follow_the_moving_states_and_keep_the_others(
    db: Engine,
) -> None:
    from engine.admin.figures import FiguresCache

    done = seed.message(db, "F1")
    waiting = seed.message(db, "F2", state=State.HELD)
    figures = FiguresCache(db, lambda: ["lab", "quiet"], max_age=60)
    first = figures.refresh()
    assert first is not None
    assert first.channels["lab"].counts == {"delivered": 1, "held": 1}
    with db.begin() as conn:
        conn.execute(
            messages.update().where(messages.c.id == waiting).values(state="dead_lettered")
        )
    second = figures.refresh()  # not a full count: the delivered one is carried over
    assert second is not None and done
    assert second.channels["lab"].counts == {"delivered": 1, "dead_lettered": 1}
    assert second.channels["lab"].oldest_waiting == {}
    assert second.channels["lab"].last_received_at is not None
    assert second.channels["lab"].rates["1m"] == 2.0


def test_slow_counts_are_taken_less_often(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot that takes long (a large backlog to count) is kept longer, so that counting
    stays a small share of the engine's time (``BUSY_SHARE``)."""
    from engine.admin import figures as figures_module
    from engine.admin.figures import FiguresCache

    seed.message(db, "S1")
    taken: list[float] = []
    take = figures_module.take_snapshot

    def slow(*args: Any) -> Any:
        taken.append(time.monotonic())
        time.sleep(0.05)
        return take(*args)

    monkeypatch.setattr(figures_module, "take_snapshot", slow)
    figures = FiguresCache(db, lambda: ["lab"], max_age=0.01)
    first = figures.get()
    assert figures.age_allowed >= 0.05 / FiguresCache.BUSY_SHARE  # a second at least
    time.sleep(0.05)  # older than max_age, not than what its cost allows
    assert figures.get() is first and len(taken) == 1
    monkeypatch.setattr(figures, "_taken", time.monotonic() - figures.age_allowed)
    assert figures.get() is not first and len(taken) == 2
