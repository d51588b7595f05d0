"""``aiguillage dlq``, ``stats`` and ``trace`` on a temporary database (AIGUILLAGE_DATABASE_URL)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner, Result

from engine.channels.config import ChannelConfig, ErrorPolicy
from engine.channels.loader import load_channels
from engine.cli import common
from engine.cli.main import app
from engine.db import URL_ENV, make_engine
from engine.errors import StoreUnavailable
from engine.intake.rules import MessageRules
from engine.journal.journal import Journal
from engine.journal.message_tables import State, events, messages
from engine.migrate import upgrade
from engine.pipeline.delivery import Delivery
from engine.pipeline.pipeline import Pipeline
from engine.pipeline.worker import Worker
from engine.runtime.wiring import build_pipeline

REPO = Path(__file__).resolve().parents[2]

A28 = (
    "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306101154||ADT^A28^ADT_A05|A28-1|P|2.5\r"
    "EVN|A28|20240306101154\r"
    "PID|1||000003^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F"
)
ORU = (
    "MSH|^~\\&|LABO|LAB-A|DPI|CHU-X|20240306111154||ORU^R01^ORU_R01|{cid}|P|2.5\r"
    "PID|1||000003^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F\r"
    "OBR|1|845439^LABO|986^LABO|24323-8^Panel^LN|||20240306101010\r"
    "OBX|1|NM|1554-5^Glucose^LN||182|mg/dl|70-105|H|||F|||20240306101010|LAB-A^Laboratoire A"
)
A03_WITHOUT_VISIT = (
    "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A03^ADT_A03|A03-1|P|2.5\r"
    "PID|1||000004^^^CHU-X^PI||PAT-QUATRE^CAMILLE||19850101|M"
)
ORM = (
    "MSH|^~\\&|CPOE|CHU-X|LABO|LAB-A|20240306111154||ORM^O01^ORM_O01|ORM-1|P|2.5\r"
    "PID|1||000005^^^CHU-X^PI||PAT-CINQ^ALEX"
)


@dataclass
class Down:
    name: str

    def write(self, delivery: Delivery) -> None:
        raise StoreUnavailable(f"{self.name} is down")


@dataclass
class Seeded:
    """Journal ids of the messages made for the tests."""

    registered: int
    delivered: int
    invalid: int
    unsupported: int
    unavailable: int


def receive(db: Engine, channel: ChannelConfig, text: str) -> int:
    intake = MessageRules(channel.name, channel.accept, channel.source.default_charset)
    with db.connect() as conn:
        [appended] = Journal(db).append(conn, [intake.prepare(text.encode(), "test").row])
    return appended.id


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv(URL_ENV, url)
    monkeypatch.chdir(tmp_path)  # no channels.yaml here: the URL comes from the environment
    engine = make_engine(url, durability="normal")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def seeded(db: Engine) -> Seeded:
    """A registered patient, a delivered result for them and three dead letters on two
    channels. The registration (ADT^A28) comes first: a result for a patient the store does
    not know yet would be held, not delivered."""
    hospital = load_channels(REPO / "channels.yaml").channels[0]
    lab = hospital.model_copy(update={"name": "lab", "errors": ErrorPolicy(max_attempts=1)})
    journal = Journal(db)
    ids = Seeded(
        registered=receive(db, hospital, A28),
        delivered=receive(db, hospital, ORU.format(cid="ORU-1")),
        invalid=receive(db, hospital, A03_WITHOUT_VISIT),
        unsupported=receive(db, hospital, ORM),
        unavailable=receive(db, lab, ORU.format(cid="ORU-2")),
    )
    worker = Worker(
        db,
        journal,
        {
            hospital.name: build_pipeline(hospital),
            lab.name: Pipeline(lab, {"store": Down("store")}),
        },
    )
    while worker.run_once():
        pass
    return ids


@pytest.fixture(autouse=True)
def wide_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at 80 columns when not on a terminal: widen it so lines stay whole."""
    monkeypatch.setattr(common.console, "_width", 10_000)
    monkeypatch.setattr(common.err_console, "_width", 10_000)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def state_of(db: Engine, message_id: int) -> str:
    with db.connect() as conn:
        return conn.execute(
            select(messages.c.state).where(messages.c.id == message_id)
        ).scalar_one()


def operator_events(db: Engine, message_id: int) -> list[tuple[str, str, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(events.c.code, events.c.reason, events.c.actor)
            .where(events.c.message_id == message_id, events.c.stage == "operator")
            .order_by(events.c.id)
        )
        return [(r[0], r[1], r[2]) for r in rows]


# -- dlq list -------------------------------------------------------------------------------


def test_list_json_gives_every_dead_letter_oldest_first(seeded: Seeded) -> None:
    result = cli("dlq", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == [seeded.invalid, seeded.unsupported, seeded.unavailable]
    by_id = {r["id"]: r for r in rows}
    assert (by_id[seeded.invalid]["error_stage"], by_id[seeded.invalid]["error_code"]) == (
        "transform",
        "invalid_message",
    )
    assert (by_id[seeded.unsupported]["error_stage"], by_id[seeded.unsupported]["error_code"]) == (
        "intake",
        "unsupported_message_type",
    )
    assert by_id[seeded.unavailable]["channel"] == "lab"
    assert all("raw" not in r for r in rows)


def test_list_json_filters_by_channel(seeded: Seeded) -> None:
    result = cli("dlq", "list", "--json", "--channel", "lab")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.stdout)] == [seeded.unavailable]


def test_list_json_filters_by_code(seeded: Seeded) -> None:
    result = cli("dlq", "list", "--json", "--code", "unsupported_message_type")
    assert [r["id"] for r in json.loads(result.stdout)] == [seeded.unsupported]


def test_list_json_filters_by_channel_and_code_together(seeded: Seeded) -> None:
    result = cli("dlq", "list", "--json", "--channel", "lab", "--code", "invalid_message")
    assert json.loads(result.stdout) == []
    result = cli("dlq", "list", "--json", "--channel", "hospital_hl7", "--code", "invalid_message")
    assert [r["id"] for r in json.loads(result.stdout)] == [seeded.invalid]


def test_list_prints_a_table_with_the_count(seeded: Seeded) -> None:
    result = cli("dlq", "list")
    assert result.exit_code == 0, result.output
    assert "3 dead letter(s)" in result.stdout
    assert "unsupported_message_type" in result.stdout
    assert "ORM^O01" in result.stdout


# -- dlq show -------------------------------------------------------------------------------


def test_show_prints_the_reason_history_and_original_bytes(seeded: Seeded) -> None:
    result = cli("dlq", "show", str(seeded.invalid))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "error_code: invalid_message" in out
    assert "error_stage: transform" in out
    assert "error_reason: ADT^A03 names no visit" in out
    assert "dead_lettered attempt 1 transform invalid_message" in out
    assert f"original bytes ({len(A03_WITHOUT_VISIT.encode())} bytes" in out
    for segment in A03_WITHOUT_VISIT.split("\r"):
        assert segment in out.splitlines()


def test_show_of_an_unknown_message_exits_1() -> None:
    result = cli("dlq", "show", "999")
    assert result.exit_code == 1
    assert "no message 999" in result.stderr


# -- dlq replay -----------------------------------------------------------------------------


def test_replay_by_id_requeues_the_dead_letter_once(db: Engine, seeded: Seeded) -> None:
    result = cli("dlq", "replay", str(seeded.invalid), "--no-wait")
    assert result.exit_code == 0, result.output
    assert f"requeued 1 message(s): [{seeded.invalid}]" in result.stdout
    assert state_of(db, seeded.invalid) == State.RECEIVED
    again = cli("dlq", "replay", str(seeded.invalid), "--no-wait")
    assert again.exit_code == 0, again.output
    assert "requeued 0 message(s)" in again.stdout
    assert (
        f"skipped 1 (not dead letters, or oversized messages kept only in part, which "
        f"cannot be replayed): [{seeded.invalid}]" in again.stdout
    )
    assert operator_events(db, seeded.invalid) == [
        ("replayed", "operator replay", getpass.getuser())
    ]


def test_replay_by_channel_and_code_requeues_only_those(db: Engine, seeded: Seeded) -> None:
    result = cli(
        "dlq", "replay", "--channel", "hospital_hl7", "--code", "invalid_message", "--no-wait"
    )
    assert result.exit_code == 0, result.output
    assert f"[{seeded.invalid}]" in result.stdout
    assert state_of(db, seeded.invalid) == State.RECEIVED
    assert state_of(db, seeded.unsupported) == State.DEAD_LETTERED
    assert state_of(db, seeded.unavailable) == State.DEAD_LETTERED


def test_replay_by_channel_requeues_all_of_its_dead_letters(db: Engine, seeded: Seeded) -> None:
    result = cli("dlq", "replay", "--channel", "hospital_hl7", "--no-wait")
    assert result.exit_code == 0, result.output
    assert f"requeued 2 message(s): [{seeded.invalid}, {seeded.unsupported}]" in result.stdout
    assert state_of(db, seeded.unavailable) == State.DEAD_LETTERED


def test_replay_without_ids_or_channel_is_refused(db: Engine, seeded: Seeded) -> None:
    result = cli("dlq", "replay")
    assert result.exit_code == 2
    assert "--channel" in result.stderr
    assert state_of(db, seeded.invalid) == State.DEAD_LETTERED


# -- dlq discard ----------------------------------------------------------------------------


def test_discard_records_the_reason_and_ends_the_dead_letter(db: Engine, seeded: Seeded) -> None:
    result = cli("dlq", "discard", str(seeded.unsupported), "--reason", "ORM sent by mistake")
    assert result.exit_code == 0, result.output
    assert f"discarded {seeded.unsupported}" in result.stdout
    assert state_of(db, seeded.unsupported) == State.DISCARDED
    assert operator_events(db, seeded.unsupported) == [
        ("discarded", "ORM sent by mistake", getpass.getuser())
    ]
    listed = json.loads(cli("dlq", "list", "--json").stdout)
    assert seeded.unsupported not in [r["id"] for r in listed]


def test_discard_requires_a_reason(db: Engine, seeded: Seeded) -> None:
    result = cli("dlq", "discard", str(seeded.unsupported))
    assert result.exit_code == 2
    assert "--reason" in result.stderr
    assert state_of(db, seeded.unsupported) == State.DEAD_LETTERED


def test_discard_of_a_message_that_is_not_a_dead_letter_exits_1(db: Engine, seeded: Seeded) -> None:
    result = cli("dlq", "discard", str(seeded.delivered), "--reason", "no")
    assert result.exit_code == 1
    assert f"message {seeded.delivered} is not a dead letter nor held" in result.stderr
    assert state_of(db, seeded.delivered) == State.DELIVERED
    assert operator_events(db, seeded.delivered) == []


# -- stats and trace ------------------------------------------------------------------------


def test_stats_json_counts_each_channel(seeded: Seeded) -> None:
    result = cli("stats", "--json")
    assert result.exit_code == 0, result.output
    by_channel = {r["channel"]: r for r in json.loads(result.stdout)}
    assert by_channel["hospital_hl7"] == {
        "channel": "hospital_hl7",
        "received": 4,
        "in_flight": 0,
        "filtered": 0,
        "delivered": 2,
        "dead_lettered": 2,
        "discarded": 0,
        "held": 0,
        "review": 0,
        # No channels.yaml in this folder: the channel is known from the journal alone.
        "source": "",
        "source_state": "not configured",
    }
    assert (by_channel["lab"]["received"], by_channel["lab"]["dead_lettered"]) == (1, 1)


def test_trace_by_control_id_tells_the_state(seeded: Seeded) -> None:
    result = cli("trace", "A03-1")
    assert result.exit_code == 0, result.output
    assert f"#{seeded.invalid} hospital_hl7 ADT^A03 control id A03-1" in result.stdout
    assert "dead_lettered after 1 attempt(s)" in result.stdout
    assert "invalid_message" in result.stdout


def test_trace_json_by_message_id_includes_the_history(seeded: Seeded) -> None:
    result = cli("trace", str(seeded.unavailable), "--json")
    assert result.exit_code == 0, result.output
    [found] = json.loads(result.stdout)
    assert (found["id"], found["state"], found["channel"]) == (
        seeded.unavailable,
        "dead_lettered",
        "lab",
    )
    assert [(e["state"], e["code"]) for e in found["history"]] == [
        ("dead_lettered", "store_unavailable")
    ]


def test_trace_by_patient_key_finds_each_of_the_patients_messages(seeded: Seeded) -> None:
    result = cli("trace", "000003^CHU-X", "--json")
    assert sorted(r["id"] for r in json.loads(result.stdout)) == [
        seeded.registered,
        seeded.delivered,
        seeded.unavailable,
    ]


def test_trace_of_an_unknown_term_exits_1(seeded: Seeded) -> None:
    result = cli("trace", "NOPE-42")
    assert result.exit_code == 1
    assert "no message matches 'NOPE-42'" in result.stderr


def test_show_prints_long_segments_whole_when_not_on_a_terminal(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common.console, "_width", None)  # undo wide_output: width detection
    result = cli("dlq", "show", str(seeded.unavailable))
    assert result.exit_code == 0, result.output
    segments = ORU.format(cid="ORU-2").split("\r")
    assert max(len(s) for s in segments) > 80
    for segment in segments:
        assert segment in result.stdout.splitlines()
