"""Journal pruning (issue 11) on SQLite and PostgreSQL: what goes and what never goes, child
rows with their messages, the dry run, the job in a running engine, and pruning while
messages come in."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, func, insert, select
from typer.testing import CliRunner

from engine.cli.main import app
from engine.db import make_engine
from engine.journal.message_tables import State, events, holds, messages, outbox
from engine.journal.prune import CHILDREN, cutoffs, prune, prune_batch, would_prune
from engine.journal.prune_job import PruneJob, config_cutoffs
from engine.journal.transformed import transformed
from engine.migrate import upgrade
from engine.store.record_core import identity_reviews
from tests.integration.inprocess import InProcessEngine

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@pytest.fixture
def db(store_url: str) -> Iterator[Engine]:
    engine = make_engine(store_url, durability="normal")
    upgrade(engine)
    yield engine
    engine.dispose()


def row(state: str, received: datetime, updated: datetime | None = None, **extra: Any) -> dict:
    n = extra.pop("n", 0)
    return {
        "channel": extra.pop("channel", "lab"),
        "received_at": received,
        "updated_at": updated or received,
        "peer": "",
        "control_id": f"C{state}{n}{received:%Y%m%d%H%M%S%f}",
        "state": state,
        "attempts": 1,
        "ack_code": "AA",
        "charset": "",
        "size": 3,
        "content_hash": f"h{n}",
        "raw": b"MSH",
        "delivered_to": "",
        **extra,
    }


def seed(db: Engine, state: str, age_days: float, *, children: bool = True, **kw: Any) -> int:
    """One journal message ``age_days`` old with an event, a hold, a sent ZAM and a
    transformed form (``children``)."""
    at = NOW - timedelta(days=age_days)
    updated = kw.pop("updated_days", None)
    with db.begin() as conn:
        ident = conn.execute(
            insert(messages)
            .values(
                row(state, at, None if updated is None else NOW - timedelta(days=updated), **kw)
            )
            .returning(messages.c.id)
        ).scalar_one()
        if children:
            conn.execute(insert(events).values(message_id=ident, at=at, state=state, attempt=1))
            conn.execute(insert(holds).values(message_id=ident, key=f"ins:{ident}"))
            conn.execute(
                insert(transformed).values(
                    message_id=ident, destination="store", payload=b"X", created_at=at
                )
            )
            conn.execute(
                insert(outbox).values(
                    message_id=ident,
                    channel="lab",
                    destination="zam",
                    kind="zam",
                    payload=b"Z",
                    created_at=at,
                    next_attempt_at=at,
                    attempts=1,
                    sent_at=at,
                )
            )
    return int(ident)


def left(db: Engine) -> set[int]:
    with db.connect() as conn:
        return set(conn.execute(select(messages.c.id)).scalars())


def children_of(db: Engine, ids: set[int]) -> dict[str, int]:
    with db.connect() as conn:
        return {
            name: int(
                conn.execute(
                    select(func.count()).select_from(t).where(t.c.message_id.in_(ids))
                ).scalar_one()
            )
            for name, t in CHILDREN.items()
        }


def test_ended_messages_past_the_retention_go_with_their_child_rows_and_nothing_else(
    db: Engine,
) -> None:
    gone = {seed(db, s, 31) for s in (State.DELIVERED, State.FILTERED, State.DISCARDED)}
    gone.add(seed(db, State.DELIVERED, 400, n=1))
    never = {
        seed(db, s, 400)
        for s in (State.DEAD_LETTERED, State.HELD, State.REVIEW, State.RECEIVED, State.RETRYING)
    }
    young = {
        seed(db, State.DELIVERED, 29),
        # received long ago, but delivered (after a hold) 2 days ago: its 30 days start then
        seed(db, State.DELIVERED, 60, updated_days=2, n=2),
    }
    with structlog.testing.capture_logs():
        done = prune(db, cutoffs(NOW, 30), batch=3, pause_seconds=0)
    assert (done.messages, done.batches) == (4, 2)
    assert done.rows == {"messages": 4, "events": 4, "holds": 4, "outbox": 4, "transformed": 4}
    assert left(db) == never | young
    assert children_of(db, gone) == {name: 0 for name in CHILDREN}
    assert children_of(db, never | young) == {name: 7 for name in CHILDREN}
    assert prune(db, cutoffs(NOW, 30), batch=3, pause_seconds=0).messages == 0


def test_an_unsent_business_ack_or_an_open_identity_review_keeps_its_message(db: Engine) -> None:
    unsent = seed(db, State.DELIVERED, 40)
    reviewed = seed(db, State.DELIVERED, 40, n=1)
    closed_review = seed(db, State.DELIVERED, 40, n=2)
    with db.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.message_id == unsent).values(sent_at=None))
        for ident, status in ((reviewed, "open"), (closed_review, "rejected")):
            conn.execute(
                insert(identity_reviews).values(
                    message_id=ident,
                    channel="lab",
                    code="905",
                    reason="r",
                    status=status,
                    created_at=NOW,
                )
            )
    assert prune(db, cutoffs(NOW, 30), batch=10, pause_seconds=0).messages == 1
    assert left(db) == {unsent, reviewed}


def test_a_channel_whose_duplicate_window_is_longer_keeps_its_messages_that_long(
    db: Engine,
) -> None:
    kept = seed(db, State.DELIVERED, 45, channel="lab")
    other = seed(db, State.DELIVERED, 45, channel="adt", n=1)
    lab_old = seed(db, State.DELIVERED, 61, channel="lab", n=2)
    short = seed(db, State.DELIVERED, 45, channel="short", n=3)
    windows = {"lab": 60 * 86400.0, "adt": None, "short": 3600.0}
    cut = cutoffs(NOW, 30, windows)
    assert set(cut.channels) == {"lab"}  # a window shorter than the retention changes nothing
    assert prune(db, cut, batch=10, pause_seconds=0).messages == 3
    assert left(db) == {kept}
    assert other not in left(db) and lab_old not in left(db) and short not in left(db)


def test_the_dry_run_reports_what_the_prune_then_deletes_and_changes_nothing(
    db: Engine, tmp_path: Path
) -> None:
    for n in range(3):
        seed(db, State.DELIVERED, 40, n=n)
    seed(db, State.FILTERED, 40, channel="adt", n=9)
    seed(db, State.DEAD_LETTERED, 40, n=10)
    seed(db, State.DELIVERED, 10, n=11)
    config = tmp_path / "channels.yaml"
    config.write_text(CHANNELS.format(url=db.url.render_as_string(hide_password=False), port=1))
    before = left(db)
    runner = CliRunner()
    dry = runner.invoke(app, ["journal", "prune", "--dry-run", "--json", "-c", str(config)])
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.output)
    assert report["messages"] == 4 and report["dry_run"] is True
    assert report["by_channel_state"] == [
        {"channel": "adt", "state": "filtered", "messages": 1},
        {"channel": "lab", "state": "delivered", "messages": 3},
    ]
    assert report["rows"] == {"events": 4, "holds": 4, "outbox": 4, "transformed": 4}
    assert left(db) == before
    # --older-than wins over the file's 30 days; the text output names no patient data
    text_run = runner.invoke(app, ["journal", "prune", "--older-than", "50", "-c", str(config)])
    assert text_run.exit_code == 0, text_run.output
    assert "0 message(s) older than 50 day(s) pruned" in text_run.output
    wet = runner.invoke(app, ["journal", "prune", "--json", "-c", str(config)])
    assert wet.exit_code == 0, wet.output
    assert json.loads(wet.output)["messages"] == 4
    assert len(left(db)) == len(before) - 4


def test_the_job_logs_counts_only(db: Engine, tmp_path: Path) -> None:
    from engine.channels.loader import parse_channels

    seed(db, State.DELIVERED, 40)
    config = parse_channels(
        CHANNELS.format(url=db.url.render_as_string(hide_password=False), port=1)
    )
    job = PruneJob(config, db)
    with structlog.testing.capture_logs() as logs:
        done = job.run(NOW)
    job.stop()
    assert done.messages == 1
    [line] = [e for e in logs if e["event"] == "journal_pruned"]
    assert (line["messages"], line["events_rows"], line["batches"]) == (1, 1, 1)
    assert_counts_only(logs)
    if db.dialect.name == "postgresql":  # the job vacuums and analyzes the journal
        with db.connect() as conn:
            vacuumed = conn.exec_driver_sql(
                "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL FROM "
                "pg_stat_user_tables WHERE relid = 'journal_messages'::regclass"
            ).one()
        assert tuple(vacuumed) == (True, True)


def assert_counts_only(logs: list[MutableMapping[str, Any]]) -> None:
    for event in logs:
        for key, value in event.items():
            if key not in ("event", "log_level", "lease"):
                assert isinstance(value, int | float), (event["event"], key, value)


CHANNELS = """
engine:
  database_url: {url}
  durability: normal
  journal_retention: {{days: 30, batch: 2, every_minutes: 60}}
channels:
  - name: lab
    source: {{type: mllp, port: {port}}}
    accept: ["*"]
    destinations: {{out: {{type: file, directory: out}}}}
"""


def test_the_running_engine_schedules_the_job_and_its_run_prunes(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    running = InProcessEngine(CHANNELS, url=store_url)
    try:
        job = running.engine.prune
        assert job.scheduler is not None and job.scheduler.running
        scheduled = job.scheduler.get_job("journal_prune")
        assert scheduled is not None
        assert scheduled.trigger.interval == timedelta(minutes=60)
        db = running.engine.db
        old = {seed(db, State.DELIVERED, 40, n=n) for n in range(5)}
        kept = seed(db, State.DEAD_LETTERED, 40, n=9)
        job.run_soon()  # the scheduler's own run, brought forward
        for _ in range(200):
            if not old & left(db):
                break
            time.sleep(0.05)
        assert left(db) == {kept}
    finally:
        running.stop()
    assert running.engine.prune.scheduler is None


def test_an_engine_with_pruning_disabled_schedules_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = CHANNELS.replace("every_minutes: 60", "every_minutes: 60, enabled: false")
    running = InProcessEngine(text, url=f"sqlite:///{tmp_path / 'engine.db'}")
    try:
        assert running.engine.prune.scheduler is None
    finally:
        running.stop()


ORU = (
    "MSH|^~\\&|LAB|CHU|AIG|CHU|20240306111154||ORU^R01|P{n}|P|2.5\r"
    "PID|1||{n}^^^CHU^PI||NOM^PRENOM||19800101|F\r"
    "OBX|1|NM|718-7^Hb^LN||13|g/dL\r"
)


def test_messages_sent_while_a_prune_runs_are_all_acknowledged_and_delivered(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune of 3,000 old messages, 50 a transaction, while 60 messages come in over MLLP:
    every one gets its AA and ends delivered, and the prune goes to the end."""
    monkeypatch.chdir(tmp_path)
    running = InProcessEngine(
        CHANNELS.replace("every_minutes: 60", "enabled: false"), url=store_url
    )
    try:
        db = running.engine.db
        at = NOW - timedelta(days=40)
        with db.begin() as conn:
            conn.execute(
                insert(messages),
                [row(State.DELIVERED, at, n=n, channel="old") for n in range(3000)],
            )
        result: dict[str, Any] = {}

        def pruning() -> None:
            result["done"] = prune(db, cutoffs(datetime.now(UTC), 30), batch=50, pause_seconds=0)

        thread = threading.Thread(target=pruning)
        thread.start()
        codes = running.send(*(ORU.format(n=n) for n in range(60)))
        thread.join(60)
        assert not thread.is_alive()
        assert codes == ["AA"] * 60
        assert result["done"].messages == 3000 and result["done"].batches == 60
        states = running.rows("SELECT state, count(*) FROM journal_messages GROUP BY state")
        assert states == [("delivered", 60)]
    finally:
        running.stop()


def test_config_cutoffs_take_the_file_retention_and_the_channels_windows() -> None:
    from engine.channels.loader import parse_channels

    config = parse_channels(
        CHANNELS.format(url="sqlite:///x.db", port=1).replace(
            "port: 1}", "port: 1, duplicates: {reuse_window_seconds: 8640000}}"
        )
    )
    cut = config_cutoffs(config, NOW)
    assert cut.default == NOW - timedelta(days=30)
    assert cut.channels == {"lab": NOW - timedelta(seconds=8640000)}
    assert config_cutoffs(config, NOW, days=200).channels == {}


def test_a_batch_rechecks_the_state_inside_its_transaction(db: Engine) -> None:
    """What a batch selects it deletes in the same transaction: the dry run and the batch
    agree, and a message replayed (no longer ended) is not in either."""
    ended = seed(db, State.DELIVERED, 40)
    replayed = seed(db, State.DISCARDED, 40, n=1)
    with db.begin() as conn:
        conn.execute(
            messages.update().where(messages.c.id == replayed).values(state=State.RECEIVED)
        )
        assert would_prune(conn, cutoffs(NOW, 30))["messages"] == 1
        assert prune_batch(conn, cutoffs(NOW, 30), 10)["messages"] == 1
    assert left(db) == {replayed}
    assert ended not in left(db)
