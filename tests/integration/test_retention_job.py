"""The daily retention job (issue 13, DOMAIN.md §6, CSP L1111-18) on SQLite and PostgreSQL:
what it purges and keeps, its logs (counts only), its schedule in a running engine, and the
lease that lets one node of several run it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog
from sqlalchemy import Engine, func, insert, select
from typer.testing import CliRunner

from engine.channels.record_retention import RetentionSettings
from engine.cli.main import app
from engine.db import make_engine
from engine.lease import Lease
from engine.migrate import upgrade
from engine.record.model import Actor, Role
from engine.store import access_log
from engine.store.record_core import encounters, patients
from engine.store.record_tables import statuses
from engine.store.retention_job import LEASE_KEY, RetentionJob, purge_in_batches
from tests.integration.inprocess import InProcessEngine

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
TEN_YEARS_AGO = NOW.replace(year=NOW.year - 10)
#: INS and names of the test patients: none may appear in a log line.
PEOPLE = {
    "old": ("279035121518989", "ANCIEN"),
    "older": ("185057512300143", "PLUSANCIEN"),
    "recent": ("299129912345678", "RECENT"),
}


@pytest.fixture
def db(store_url: str) -> Iterator[Engine]:
    engine = make_engine(store_url, durability="normal")
    upgrade(engine)
    yield engine
    engine.dispose()


def closed_record(db: Engine, who: str, closed_at: datetime) -> int:
    """A patient whose record was closed at ``closed_at``, with a visit and two log lines."""
    ins, name = PEOPLE[who]
    with db.begin() as conn:
        pid = conn.execute(
            insert(patients)
            .values(ins=ins, birth_name=name, created_at=closed_at, updated_at=closed_at)
            .returning(patients.c.id)
        ).scalar_one()
        conn.execute(
            insert(statuses).values(
                patient_id=pid,
                state="closed",
                closed_at=closed_at,
                closed_reason="patient",
                updated_at=closed_at,
            )
        )
        conn.execute(
            insert(encounters).values(
                patient_id=pid,
                visit_number=f"V{pid}",
                status="closed",
                created_at=closed_at,
                updated_at=closed_at,
            )
        )
        for action in ("read_record", "close"):
            access_log.append(conn, pid, Actor(Role.PATIENT, ins), action, closed_at)
    return int(pid)


def left(db: Engine, pid: int) -> tuple[int, int, str]:
    """Access-log lines and visits left for ``pid``, and its record's closure reason."""
    with db.connect() as conn:
        logged = conn.execute(
            select(func.count()).where(access_log.access_log.c.patient_id == pid)
        ).scalar_one()
        visits = conn.execute(
            select(func.count()).where(encounters.c.patient_id == pid)
        ).scalar_one()
        reason = conn.execute(
            select(statuses.c.closed_reason).where(statuses.c.patient_id == pid)
        ).scalar_one()
    return int(logged), int(visits), str(reason)


def test_the_job_purges_a_record_closed_ten_years_and_a_day_ago_and_keeps_one_a_day_short(
    db: Engine,
) -> None:
    """L1111-18: ten years after the closure, counted in calendar years; two records due,
    purged one per transaction (batch 1); the log says how many, never who."""
    old = closed_record(db, "old", TEN_YEARS_AGO - timedelta(days=1))
    older = closed_record(db, "older", TEN_YEARS_AGO - timedelta(days=400))
    recent = closed_record(db, "recent", TEN_YEARS_AGO + timedelta(days=1))
    job = RetentionJob(RetentionSettings(batch=1), db, "Europe/Paris")
    with structlog.testing.capture_logs() as logs:
        done = job.run(NOW)
    job.stop()
    assert (done.records, done.batches, done.skipped) == (2, 2, False)
    assert done.rows["record_access_log"] == 4 and done.rows["store_encounters"] == 2
    assert left(db, old) == (0, 0, "patient purged")
    assert left(db, older) == (0, 0, "patient purged")
    assert left(db, recent) == (2, 1, "patient")
    [summary] = [e for e in logs if e["event"] == "retention_done"]
    assert (summary["records"], summary["batches"]) == (2, 2)
    assert [e["records"] for e in logs if e["event"] == "retention_purged"] == [1, 1]
    assert_counts_only(logs)
    assert job.run(NOW).records == 0  # a purged record is never due again


def assert_counts_only(logs: list[MutableMapping[str, Any]]) -> None:
    """Every field of every line is a number, but the event's name, level and the time."""
    text = json.dumps(logs, default=str)
    for ins, name in PEOPLE.values():
        assert ins not in text and name not in text
    for event in logs:
        for key, value in event.items():
            if key not in ("event", "log_level", "at", "timezone", "lease", "reason"):
                assert isinstance(value, int | float), (event["event"], key, value)


def test_the_running_engine_schedules_the_job_at_the_configured_time_and_it_purges(
    tmp_path: Any,
) -> None:
    """Through the runtime: the engine registers the job at engine.retention.at (in
    engine.timezone); brought forward, the scheduler's own run purges a record due."""
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    running = InProcessEngine(CHANNELS, url=url, at='"04:15"', enabled="true")
    try:
        scheduler = running.engine.retention.scheduler
        assert scheduler is not None and scheduler.running
        job = scheduler.get_job("retention")
        assert job is not None
        at = job.next_run_time.astimezone(ZoneInfo("Europe/Paris"))
        assert (at.hour, at.minute) == (4, 15)
        old = closed_record(running.engine.db, "old", datetime.now(UTC) - timedelta(days=3700))
        job.modify(next_run_time=datetime.now(UTC))
        for _ in range(200):
            if left(running.engine.db, old)[2] == "patient purged":
                break
            time.sleep(0.05)
        assert left(running.engine.db, old) == (0, 0, "patient purged")
    finally:
        running.stop()
    assert running.engine.retention.scheduler is None


def test_an_engine_with_the_job_disabled_schedules_nothing(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    running = InProcessEngine(CHANNELS, url=url, at='"03:30"', enabled="false")
    try:
        assert running.engine.retention.scheduler is None
    finally:
        running.stop()


CHANNELS = """
engine:
  database_url: {url}
  durability: normal
  retention: {{at: {at}, enabled: {enabled}}}
channels:
  - name: hospital
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
"""


@pytest.mark.postgres
def test_of_two_nodes_on_one_postgresql_the_lease_holder_alone_purges(
    postgres_url: str,
) -> None:
    """The distributed deployment: the node holding the advisory-lock lease runs the job, the
    other skips; when the holder stops (its session ends), the other takes the lease."""
    first, second = make_engine(postgres_url), make_engine(postgres_url)
    upgrade(first)
    one = RetentionJob(RetentionSettings(), first, "Europe/Paris")
    two = RetentionJob(RetentionSettings(), second, "Europe/Paris")
    try:
        old = closed_record(first, "old", TEN_YEARS_AGO - timedelta(days=1))
        assert two.run(NOW).skipped is False  # nobody held it: the second node takes it
        assert left(first, old)[2] == "patient purged"
        assert one.run(NOW).skipped is True
        assert Lease(first, LEASE_KEY, "probe").held() is False
        two.stop()  # its session ends: the lease is free
        assert one.run(NOW).skipped is False
        assert two.run(NOW).skipped is True
    finally:
        one.stop()
        two.stop()
        first.dispose()
        second.dispose()


def test_the_top_level_retention_command_is_record_retention(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue names it ``aiguillage retention --dry-run``: the same report, nothing
    deleted."""
    closed_record(db, "old", datetime.now(UTC) - timedelta(days=3700))
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", str(db.url.render_as_string(False)))
    runner = CliRunner()
    top = runner.invoke(app, ["retention", "--dry-run", "--json", "--config", "absent.yaml"])
    assert top.exit_code == 0, top.output
    report = json.loads(top.stdout)
    assert (report["records"], report["dry_run"]) == (1, True)
    assert report["rows"]["record_access_log"] == 2
    again = runner.invoke(
        app, ["record", "retention", "--dry-run", "--json", "--config", "absent.yaml"]
    )
    assert json.loads(again.stdout) == report


def test_a_writer_waiting_for_sqlites_lock_gets_it_between_two_batches(tmp_path: Any) -> None:
    """Intake is not stalled: a write asked for during the purge commits before the purge ends
    (without the rest between batches, the next batch took the lock again first and the
    writer waited for the whole purge; bench/retention.py)."""
    db = make_engine(f"sqlite:///{tmp_path / 'engine.db'}", durability="normal")
    upgrade(db)
    recent = closed_record(db, "recent", TEN_YEARS_AGO + timedelta(days=1))
    for n in range(6):
        PEOPLE[f"old{n}"] = (f"1850575123{n:05d}", f"ANCIEN{n}")
        closed_record(db, f"old{n}", TEN_YEARS_AGO - timedelta(days=1))
    committed: list[float] = []

    def write() -> None:
        with db.begin() as conn:
            access_log.append(conn, recent, Actor(Role.PATIENT, "x"), "read_record", NOW)
        committed.append(time.monotonic())

    writer = threading.Thread(target=write)
    try:
        with db.begin() as conn:  # the first batch waits for this one, the writer starts
            conn.execute(select(func.count()).select_from(patients))
            writer.start()
            time.sleep(0.05)
        done = purge_in_batches(db, NOW, batch=1)
        ended = time.monotonic()
        writer.join(10)
    finally:
        for n in range(6):
            PEOPLE.pop(f"old{n}")
        db.dispose()
    assert done.records == 6 and done.batches == 6
    assert committed and committed[0] < ended
