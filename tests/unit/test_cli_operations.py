"""The CLI fixes of the newcomer trial (issue 12): paths and databases, output for people and
scripts, finding and acting on messages, errors at start. Real SQLite files, real sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner, Result

from engine.cli.main import app
from engine.db import URL_ENV, make_engine
from engine.journal.message_tables import State, holds, messages
from engine.localtime import parse_since
from engine.migrate import upgrade
from engine.store.patients import ins_key

REPO = Path(__file__).resolve().parents[2]
LONG = "a_channel_with_a_name_long_enough_to_be_cut"
CHANNELS = f"""
engine: {{database_url: "sqlite:///data/journal.db"}}
channels:
  - name: {LONG}
    source: {{type: mllp, port: 2575}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: quiet
    source: {{type: mllp, port: 2576}}
    accept: ["ORU^R01"]
    destinations: {{store: {{type: record_store}}}}
"""
INS = "279035121518989"


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Engine]]:
    """A channels file naming a relative SQLite path, its migrated database beside it, and
    the command run from another folder."""
    monkeypatch.delenv(URL_ENV, raising=False)
    folder = tmp_path / "site"
    (folder / "data").mkdir(parents=True)
    config = folder / "channels.yaml"
    config.write_text(CHANNELS)
    db = make_engine(f"sqlite:///{folder / 'data' / 'journal.db'}")
    upgrade(db)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    yield config, db
    db.dispose()


def add(db: Engine, channel: str, state: State, at: datetime, **values: object) -> int:
    row = {
        "channel": channel,
        "received_at": at,
        "updated_at": at,
        "state": state,
        "ack_code": "AA",
        "size": 3,
        "content_hash": f"{channel}{at}{values}",
        "raw": b"MSH",
        "message_type": "ADT",
        "trigger": "A01",
        **values,
    }
    with db.begin() as conn:
        return int(conn.execute(insert(messages).returning(messages.c.id), [row]).scalar_one())


def test_version_prints_the_package_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("aiguillage 0.")


def test_stats_where_there_is_no_database_says_so_exits_2_and_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    result = cli("stats")
    assert result.exit_code == 2
    assert f"no journal database at {tmp_path / 'var' / 'aiguillage.db'}" in result.stderr
    assert "no channels.yaml here" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_relative_sqlite_path_is_read_beside_the_channels_file(
    site: tuple[Path, Engine],
) -> None:
    config, db = site
    add(db, "quiet", State.DELIVERED, datetime.now(UTC))
    result = cli("stats", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert {r["channel"]: r["delivered"] for r in json.loads(result.stdout)}["quiet"] == 1
    assert not (Path.cwd() / "data").exists()


def test_stats_piped_lists_every_channel_whole_with_its_source_even_without_traffic(
    site: tuple[Path, Engine],
) -> None:
    config, _ = site
    result = cli("stats", "--config", str(config))
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.stdout.splitlines() if LONG in x]
    assert "mllp:2575" in line and "configured" in line
    assert any("quiet" in x and "mllp:2576" in x for x in result.stdout.splitlines())


def test_held_messages_are_listed_with_headers_local_times_and_ages(
    site: tuple[Path, Engine],
) -> None:
    config, db = site
    at = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)
    add(db, "quiet", State.HELD, at, control_id="HELD-1", message_type="ORU", trigger="R01")
    result = cli("identity", "held", "--config", str(config))
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[1]
    for column in ("id", "channel", "received", "age", "type", "control id"):
        assert column in header
    assert "2026-07-01 08:30:00 CEST" in result.stdout  # summer time in Paris
    assert " d " in result.stdout  # days old
    as_json = json.loads(cli("identity", "held", "--json", "--config", str(config)).stdout)
    assert as_json[0]["received_at"] == "2026-07-01T06:30:00Z"


def test_trace_finds_a_patients_messages_by_plain_local_id_and_by_ins(
    site: tuple[Path, Engine],
) -> None:
    config, db = site
    now = datetime.now(UTC)
    one = add(db, LONG, State.DELIVERED, now, patient_key="000003^CHU-X", control_id="C1")
    two = add(db, "quiet", State.DELIVERED, now, patient_key="000003^LAB-A", control_id="C2")
    add(db, "quiet", State.DELIVERED, now, patient_key="000004^CHU-X", control_id="C3")
    held = add(db, "quiet", State.HELD, now, control_id="C4")
    with db.begin() as conn:
        conn.execute(insert(holds).values(message_id=held, key=ins_key(INS)))

    def ids(*args: str) -> list[int]:
        result = cli("trace", *args, "--json", "--config", str(config))
        assert result.exit_code == 0, result.output
        return sorted(r["id"] for r in json.loads(result.stdout))

    assert ids("000003") == [one, two]
    assert ids("000003", "--facility", "CHU-X") == [one]
    assert ids("000003^^^CHU-X") == [one]
    assert ids(INS) == [held]


def test_dlq_list_takes_limit_and_since_and_refuses_an_unknown_channel(
    site: tuple[Path, Engine],
) -> None:
    config, db = site
    now = datetime.now(UTC)
    old = add(db, "quiet", State.DEAD_LETTERED, now - timedelta(days=3), control_id="D0")
    new = [
        add(db, "quiet", State.DEAD_LETTERED, now - timedelta(minutes=i), control_id=f"D{i}")
        for i in (1, 2, 3)
    ]

    def listed(*args: str) -> list[int]:
        result = cli("dlq", "list", "--json", "--config", str(config), *args)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.stdout)]

    assert listed() == [old, *new]
    assert listed("--since", "1h") == new
    assert listed("--since", "1h", "--limit", "2") == new[:2]
    table = cli("dlq", "list", "--since", "1h", "--limit", "2", "--config", str(config))
    assert "2 of 3 (--limit) dead letter(s)" in table.stdout
    typo = cli("dlq", "list", "--channel", "qiet", "--config", str(config))
    assert typo.exit_code == 2 and "no channel 'qiet'" in typo.stderr
    assert cli("dlq", "list", "--since", "yesterday", "--config", str(config)).exit_code == 2


def test_dlq_discard_takes_several_ids_and_names_those_it_cannot_discard(
    site: tuple[Path, Engine],
) -> None:
    config, db = site
    now = datetime.now(UTC)
    a, b = (add(db, "quiet", State.DEAD_LETTERED, now, control_id=c) for c in ("X1", "X2"))
    done = add(db, "quiet", State.DELIVERED, now, control_id="X3")
    result = cli(
        "dlq", "discard", str(a), str(b), str(done), "--reason", "test", "--config", str(config)
    )
    assert result.exit_code == 1
    assert f"discarded {a}" in result.stdout and f"discarded {b}" in result.stdout
    assert f"message {done} is not a dead letter nor held" in result.stderr
    with db.connect() as conn:
        states = conn.execute(select(messages.c.state).order_by(messages.c.id)).scalars().all()
    assert states == [State.DISCARDED, State.DISCARDED, State.DELIVERED]
    unknown = cli("dlq", "discard", "--channel", "nope", "--reason", "x", "--config", str(config))
    assert unknown.exit_code == 2 and "no channel 'nope'" in unknown.stderr


def test_replay_without_a_running_engine_says_the_messages_wait_to_be_taken(
    site: tuple[Path, Engine],
) -> None:
    config, db = site
    dead = add(db, "quiet", State.DEAD_LETTERED, datetime.now(UTC), control_id="R1")
    result = cli("dlq", "replay", str(dead), "--reason", "fixed", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert f"#{dead} quiet: received (not taken yet" in result.stdout


def test_send_of_a_missing_file_blames_the_file_not_the_server(tmp_path: Path) -> None:
    missing = tmp_path / "nope.hl7"
    result = cli("send", str(missing), "--port", "9")
    assert result.exit_code == 2
    assert f"cannot read {missing}: No such file or directory" in result.stderr
    assert "cannot send" not in result.stderr


def test_run_with_a_port_in_use_names_the_channel_and_port_and_opens_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free.bind(("127.0.0.1", 0))
        free_port = free.getsockname()[1]
        free.close()
        port = taken.getsockname()[1]
        config = tmp_path / "channels.yaml"
        config.write_text(CHANNELS.replace("2575", str(free_port)).replace("2576", str(port)))
        result = cli("run", "--config", str(config))
    assert result.exit_code == 1
    assert f"channel quiet: port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists()  # not even the database was opened


def test_since_accepts_durations_and_local_dates() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now=now) == now - timedelta(minutes=90)
    assert parse_since("2026-12-03T08:00") == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="give 30m"):
        parse_since("yesterday")
