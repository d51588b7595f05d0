"""The journal on a temporary SQLite database, alone and driven by the pipeline worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

import engine.pipeline.worker as worker_module
from engine.channels.config import Backoff, ChannelConfig, ErrorPolicy
from engine.channels.loader import load_channels
from engine.errors import StoreUnavailable
from engine.intake.rules import MessageRules
from engine.journal import lookups as queries
from engine.journal.claim import claim_pending
from engine.journal.journal import Journal
from engine.journal.message_tables import State, events, messages
from engine.journal.records import NewMessage
from engine.pipeline.delivery import Delivery
from engine.pipeline.pipeline import Pipeline
from engine.pipeline.stage_route import Route
from engine.pipeline.worker import Worker, backoff_delay
from engine.runtime.wiring import build_pipeline
from engine.store.record_core import observations

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def oru(control_id: str, patient: str = "000003", glucose: str = "182") -> bytes:
    return "\r".join(
        [
            f"MSH|^~\\&|LABO|LAB-A|DPI|CHU-X|20240306111154||ORU^R01^ORU_R01|{control_id}|P|2.5",
            f"PID|1||{patient}^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F",
            "OBR|1|845439^LABO|986^LABO|24323-8^Panel^LN|||20240306101010",
            f"OBX|1|NM|1554-5^Glucose^LN||{glucose}|mg/dl|70-105|H|||F",
            "OBX|2|NM|2345-7^Sodium^LN||140|mmol/l|135-145|N|||F",
        ]
    ).encode()


def a28(control_id: str, patient: str = "000003") -> bytes:
    """The registration (ADT^A28) of the patient of :func:`oru`, same identifier and traits."""
    return "\r".join(
        [
            f"MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306101154||ADT^A28^ADT_A05|{control_id}|P|2.5",
            "EVN|A28|20240306101154",
            f"PID|1||{patient}^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F",
        ]
    ).encode()


def as_utc(value: datetime) -> datetime:
    """SQLite gives the journal's datetimes back naive; they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@pytest.fixture
def journal(db: Engine) -> Journal:
    return Journal(db)


def new(
    control_id: str | None,
    *,
    sender_app: str = "LABO",
    facility: str = "LAB-A",
    patient: str | None = "000003^CHU-X",
    channel: str = "lab",
    raw: bytes | None = None,
) -> NewMessage:
    return NewMessage(
        channel=channel,
        raw=raw if raw is not None else oru(control_id or "", (patient or "x").split("^")[0]),
        peer="10.0.0.7:40000",
        charset="utf-8",
        sender_app=sender_app,
        sender_facility=facility,
        control_id=control_id,
        message_type="ORU",
        trigger="R01",
        patient_key=patient,
    )


def append(db: Engine, journal: Journal, *batch: NewMessage) -> list[tuple[int, bool, str]]:
    with db.connect() as conn:
        return [(a.id, a.duplicate, a.ack_code) for a in journal.append(conn, list(batch))]


def journal_count(db: Engine) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(messages)).scalar_one()


def row(db: Engine, message_id: int) -> dict[str, object]:
    with db.connect() as conn:
        found = conn.execute(select(messages).where(messages.c.id == message_id)).first()
    assert found is not None
    return dict(found._mapping)


def set_state(db: Engine, message_id: int, state: State, **values: object) -> None:
    with db.begin() as conn:
        conn.execute(
            messages.update().where(messages.c.id == message_id).values(state=state, **values)
        )


# -- append and deduplication ----------------------------------------------------------------


def test_a_group_commit_gives_each_row_its_own_id_and_finds_resends_past_one_lookup(
    db: Engine, journal: Journal
) -> None:
    """One executemany per batch on SQLite: the ids it reports are the rows' own, after a
    deleted last row too; resends are found among more control ids than one lookup takes."""
    [(first, _, _)] = append(db, journal, new("OLD-1"))
    [(gone, _, _)] = append(db, journal, new("GONE"))
    with db.begin() as conn:
        conn.execute(messages.delete().where(messages.c.id == gone))
    fresh = [new(f"B-{i:02d}") for i in range(20)]
    batch = [*fresh[:10], new("OLD-1"), *fresh[10:], new("B-03")]
    results = append(db, journal, *batch)
    assert results[10] == (first, True, "AA")  # the resend, the 11th of 22 control ids
    assert results[-1] == (results[3][0], True, "AA")  # resent within the batch
    ids = [ident for ident, duplicate, _ in results if not duplicate]
    assert len(set(ids)) == 20
    for message, ident in zip(fresh, ids, strict=True):
        assert row(db, ident)["control_id"] == message.control_id
    assert journal_count(db) == 21


def test_append_stores_the_raw_bytes_and_metadata(db: Engine, journal: Journal) -> None:
    payload = oru("C-1")
    [(ident, duplicate, ack)] = append(db, journal, new("C-1", raw=payload))
    assert not duplicate
    assert ack == "AA"
    stored = row(db, ident)
    assert stored["raw"] == payload
    assert stored["size"] == len(payload)
    assert (stored["channel"], stored["sender_app"], stored["sender_facility"]) == (
        "lab",
        "LABO",
        "LAB-A",
    )
    assert (stored["control_id"], stored["message_type"], stored["trigger"]) == (
        "C-1",
        "ORU",
        "R01",
    )
    assert (stored["patient_key"], stored["peer"], stored["charset"]) == (
        "000003^CHU-X",
        "10.0.0.7:40000",
        "utf-8",
    )
    assert stored["state"] == State.RECEIVED
    assert stored["attempts"] == 0


def test_append_gives_each_message_of_a_batch_its_own_row(db: Engine, journal: Journal) -> None:
    results = append(db, journal, new("C-1"), new("C-2"), new("C-3"))
    ids = [r[0] for r in results]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert [row(db, i)["control_id"] for i in ids] == ["C-1", "C-2", "C-3"]


def test_resent_message_in_a_later_batch_is_recognised(db: Engine, journal: Journal) -> None:
    [(first, _, ack)] = append(db, journal, new("C-1"))
    [(again, duplicate, ack_again)] = append(db, journal, new("C-1"))
    assert duplicate
    assert again == first
    assert ack_again == ack
    assert journal_count(db) == 1


def test_resent_message_inside_one_batch_is_recognised(db: Engine, journal: Journal) -> None:
    results = append(db, journal, new("C-1"), new("C-2"), new("C-1"))
    assert [r[1] for r in results] == [False, False, True]
    assert results[2][0] == results[0][0]
    assert results[2][2] == results[0][2]
    assert journal_count(db) == 2


def test_resent_rejected_message_gets_the_same_negative_ack(db: Engine, journal: Journal) -> None:
    rejected = new("C-9")
    rejected.state = State.DEAD_LETTERED
    rejected.ack_code = "AR"
    rejected.error_stage = "intake"
    rejected.error_code = "unsupported_message_type"
    rejected.error_reason = "not accepted"
    [(first, _, ack)] = append(db, journal, rejected)
    [(again, duplicate, ack_again)] = append(db, journal, new("C-9"))
    assert (again, duplicate, ack, ack_again) == (first, True, "AR", "AR")


def test_same_control_id_from_another_sender_is_not_a_duplicate(
    db: Engine, journal: Journal
) -> None:
    payload = oru("C-1")
    results = append(
        db,
        journal,
        new("C-1", raw=payload),
        new("C-1", raw=payload, facility="LAB-B"),
        new("C-1", raw=payload, sender_app="OTHER"),
    )
    assert [r[1] for r in results] == [False, False, False]
    assert len({r[0] for r in results}) == 3
    [(_, duplicate, _)] = append(db, journal, new("C-1", raw=payload, facility="LAB-C"))
    assert not duplicate
    assert journal_count(db) == 4


def test_same_control_id_on_another_channel_is_not_a_duplicate(
    db: Engine, journal: Journal
) -> None:
    append(db, journal, new("C-1"))
    [(_, duplicate, _)] = append(db, journal, new("C-1", channel="adt"))
    assert not duplicate


def test_message_without_control_id_is_never_deduplicated(db: Engine, journal: Journal) -> None:
    payload = oru("")
    results = append(db, journal, new(None, raw=payload), new(None, raw=payload))
    results += append(db, journal, new(None, raw=payload))
    assert [r[1] for r in results] == [False, False, False]
    assert len({r[0] for r in results}) == 3
    assert journal_count(db) == 3


# -- claim and per-patient order -------------------------------------------------------------


def test_claim_returns_messages_in_arrival_order(db: Engine, journal: Journal) -> None:
    ids = [r[0] for r in append(db, journal, *(new(f"C-{i}", patient=f"P{i}") for i in range(5)))]
    with db.connect() as conn:
        first = claim_pending(conn, T0, 3)
        everything = claim_pending(conn, T0, 100)
    assert [p.id for p in first] == ids[:3]
    assert [p.id for p in everything] == ids
    assert everything[0].raw == row(db, ids[0])["raw"]


def test_claim_skips_finished_messages(db: Engine, journal: Journal) -> None:
    ids = [r[0] for r in append(db, journal, new("C-1"), new("C-2"), new("C-3"))]
    set_state(db, ids[0], State.DELIVERED)
    set_state(db, ids[1], State.DEAD_LETTERED)
    with db.connect() as conn:
        assert [p.id for p in claim_pending(conn, T0, 10)] == [ids[2]]


def test_claim_holds_back_a_patient_waiting_for_a_retry_while_others_proceed(
    db: Engine, journal: Journal
) -> None:
    a1, b1, a2, b2 = (
        r[0]
        for r in append(
            db,
            journal,
            new("A-1", patient="A^H"),
            new("B-1", patient="B^H"),
            new("A-2", patient="A^H"),
            new("B-2", patient="B^H"),
        )
    )
    set_state(db, a1, State.RETRYING, next_attempt_at=T0 + timedelta(minutes=5))
    with db.connect() as conn:
        before = claim_pending(conn, T0, 10)
        after = claim_pending(conn, T0 + timedelta(minutes=5), 10)
    assert [p.id for p in before] == [b1, b2]
    assert [p.id for p in after] == [a1, b1, a2, b2]


def test_claim_does_not_hold_back_messages_without_a_patient(db: Engine, journal: Journal) -> None:
    first, second = (
        r[0] for r in append(db, journal, new("N-1", patient=None), new("N-2", patient=None))
    )
    set_state(db, first, State.RETRYING, next_attempt_at=T0 + timedelta(minutes=5))
    with db.connect() as conn:
        assert [p.id for p in claim_pending(conn, T0, 10)] == [second]


def test_claim_finds_other_patients_behind_many_held_back_messages(
    db: Engine, journal: Journal
) -> None:
    held = [new(f"A-{i}", patient="A^H") for i in range(5)]
    ids = [r[0] for r in append(db, journal, *held, new("B-1", patient="B^H"))]
    set_state(db, ids[0], State.RETRYING, next_attempt_at=T0 + timedelta(minutes=5))
    with db.connect() as conn:
        assert [p.id for p in claim_pending(conn, T0, 2)] == [ids[-1]]


# -- stats, replay, discard ------------------------------------------------------------------


def test_stats_count_messages_per_channel_and_state(db: Engine, journal: Journal) -> None:
    lab = [r[0] for r in append(db, journal, *(new(f"L-{i}") for i in range(6)))]
    append(db, journal, new("A-1", channel="adt"), new("A-2", channel="adt"))
    set_state(db, lab[0], State.DELIVERED)
    set_state(db, lab[1], State.DELIVERED)
    set_state(db, lab[2], State.FILTERED)
    set_state(db, lab[3], State.DEAD_LETTERED)
    set_state(db, lab[4], State.RETRYING)
    with db.connect() as conn:
        by_channel = {s.channel: s for s in queries.stats(conn)}
    assert set(by_channel) == {"lab", "adt"}
    s = by_channel["lab"]
    assert (s.received, s.in_flight, s.filtered, s.delivered, s.dead_lettered, s.discarded) == (
        6,
        2,
        1,
        2,
        1,
        0,
    )
    assert (by_channel["adt"].received, by_channel["adt"].in_flight) == (2, 2)


def test_replaying_a_dead_letter_twice_requeues_it_once(db: Engine, journal: Journal) -> None:
    [(ident, _, _)] = append(db, journal, new("C-1"))
    set_state(db, ident, State.DEAD_LETTERED, attempts=8, error_code="store_unavailable")
    with db.connect() as conn:
        first = queries.replay(conn, [ident], "alice", now=T0)
        second = queries.replay(conn, [ident], "bob", now=T0)
        history = queries.history(conn, ident)
    assert first == [ident]
    assert second == []
    replayed = row(db, ident)
    assert replayed["state"] == State.RECEIVED
    assert replayed["attempts"] == 0
    assert [(e["code"], e["actor"], e["stage"]) for e in history] == [
        ("replayed", "alice", "operator")
    ]
    assert as_utc(history[0]["at"]) == T0


def test_replay_skips_messages_that_are_not_dead_letters(db: Engine, journal: Journal) -> None:
    dead, live = (r[0] for r in append(db, journal, new("C-1"), new("C-2")))
    set_state(db, dead, State.DEAD_LETTERED)
    with db.connect() as conn:
        assert queries.replay(conn, [dead, live, 999], "alice") == [dead]
        assert queries.history(conn, live) == []


def test_discard_ends_a_dead_letter_with_its_reason(db: Engine, journal: Journal) -> None:
    [(ident, _, _)] = append(db, journal, new("C-1"))
    set_state(db, ident, State.DEAD_LETTERED)
    with db.connect() as conn:
        assert queries.discard(conn, ident, "test message from the vendor", "alice")
        history = queries.history(conn, ident)
        assert queries.dead_letters(conn) == []
    assert row(db, ident)["state"] == State.DISCARDED
    [event] = history
    assert (event["state"], event["code"], event["reason"], event["actor"]) == (
        State.DISCARDED,
        "discarded",
        "test message from the vendor",
        "alice",
    )


def test_discard_refuses_a_message_that_is_not_a_dead_letter(db: Engine, journal: Journal) -> None:
    [(ident, _, _)] = append(db, journal, new("C-1"))
    with db.connect() as conn:
        assert not queries.discard(conn, ident, "oops", "alice")
        assert not queries.discard(conn, 999, "oops", "alice")
        assert queries.history(conn, ident) == []
    assert row(db, ident)["state"] == State.RECEIVED


# -- through the worker ----------------------------------------------------------------------


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The worker's notion of now, moved by hand."""
    c = Clock()
    monkeypatch.setattr(worker_module, "utcnow", c)
    return c


@pytest.fixture
def hospital() -> ChannelConfig:
    config = load_channels(REPO / "channels.yaml")
    channel = next(c for c in config.channels if "ORU^R01" in c.accept)
    assert [r.to for r in channel.effective_routes()] == [tuple(channel.destinations)]
    return channel


@dataclass
class Flaky:
    """A destination outside the database (like ``file``) failing with ``error`` for its
    first ``failures`` writes."""

    name: str
    failures: int
    error: type[Exception] = StoreUnavailable
    written: list[int] = field(default_factory=list)
    transactional: bool = False

    def write(self, delivery: Delivery) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise self.error(f"{self.name} is down")
        self.written.append(delivery.message_id)


def receive(db: Engine, channel: ChannelConfig, *payloads: bytes) -> list[int]:
    """Intake rules then journal, as the MLLP source does; returns the journal ids."""
    intake = MessageRules(channel.name, channel.accept, channel.source.default_charset)
    journal = Journal(db)
    with db.connect() as conn:
        appended = journal.append(conn, [intake.prepare(p, "test").row for p in payloads])
    return [a.id for a in appended]


def store_failing_once(db: Engine, hospital: ChannelConfig) -> tuple[ChannelConfig, Flaky, Worker]:
    """The hospital channel with 3 attempts 10 s apart, whose store fails once."""
    policy = ErrorPolicy(max_attempts=3, backoff=Backoff(initial_seconds=10))
    channel = hospital.model_copy(update={"errors": policy})
    once = Flaky("store", failures=1)
    worker = Worker(db, Journal(db), {channel.name: Pipeline(channel, {"store": once})})
    return channel, once, worker


def run_until_idle(worker: Worker) -> None:
    for _ in range(100):
        if not worker.run_once():
            return
    raise AssertionError("the worker never ran out of work")


def register_patient(db: Engine, hospital: ChannelConfig) -> int:
    """Make the patient of :func:`oru` known to the record store (an ADT^A28 delivered by the
    real pipeline): a result for a patient the store does not know is held, not delivered."""
    [ident] = receive(db, hospital, a28("A28-1"))
    run_until_idle(Worker(db, Journal(db), {hospital.name: build_pipeline(hospital)}))
    assert row(db, ident)["state"] == State.DELIVERED
    return ident


def observation_values(db: Engine) -> list[tuple[int, str, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(observations.c.message_id, observations.c.code, observations.c.value).order_by(
                observations.c.id
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def events_of(db: Engine, message_id: int) -> list[dict[str, object]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(events).where(events.c.message_id == message_id).order_by(events.c.id)
        )
        return [dict(r._mapping) for r in rows]


def test_a_result_is_delivered_with_its_observations_stored(
    db: Engine, hospital: ChannelConfig, clock: Clock
) -> None:
    register_patient(db, hospital)
    [ident] = receive(db, hospital, oru("ORU-1", glucose="182"))
    worker = Worker(db, Journal(db), {hospital.name: build_pipeline(hospital)})
    run_until_idle(worker)
    delivered = row(db, ident)
    assert delivered["state"] == State.DELIVERED
    assert delivered["attempts"] == 1
    assert observation_values(db) == [(ident, "1554-5", "182"), (ident, "2345-7", "140")]


def test_a_permanent_failure_is_dead_lettered_at_once(
    db: Engine, hospital: ChannelConfig, clock: Clock
) -> None:
    no_visit = (
        b"MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A03^ADT_A03|A03-1|P|2.5\r"
        b"PID|1||000003^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F"
    )
    [ident] = receive(db, hospital, no_visit)
    worker = Worker(db, Journal(db), {hospital.name: build_pipeline(hospital)})
    run_until_idle(worker)
    dead = row(db, ident)
    assert dead["state"] == State.DEAD_LETTERED
    assert dead["attempts"] == 1
    assert dead["error_stage"] == "transform"  # the record store's mapping: A03 names no visit
    assert dead["error_code"] == "invalid_message"
    assert dead["error_class"] == "ValidationError"
    assert "A03" in str(dead["error_reason"])
    assert dead["raw"] == no_visit
    [event] = events_of(db, ident)
    assert (event["state"], event["stage"], event["code"], event["attempt"]) == (
        State.DEAD_LETTERED,
        "transform",
        "invalid_message",
        1,
    )
    assert observation_values(db) == []


def test_a_transient_failure_is_retried_with_backoff_then_dead_lettered(
    db: Engine, hospital: ChannelConfig, clock: Clock
) -> None:
    policy = ErrorPolicy(
        max_attempts=3, backoff=Backoff(initial_seconds=10, multiplier=3, max_seconds=60)
    )
    channel = hospital.model_copy(update={"errors": policy})
    down = Flaky("store", failures=100)
    worker = Worker(db, Journal(db), {channel.name: Pipeline(channel, {"store": down})})
    [ident] = receive(db, channel, oru("ORU-1"))

    assert worker.run_once() == 1
    first = row(db, ident)
    assert (first["state"], first["attempts"]) == (State.RETRYING, 1)
    assert (first["error_stage"], first["error_code"]) == ("destination:store", "store_unavailable")
    assert as_utc(first["next_attempt_at"]) == T0 + timedelta(seconds=10)  # type: ignore[arg-type]

    clock.now = T0 + timedelta(seconds=9)
    assert worker.run_once() == 0  # not due yet

    clock.now = T0 + timedelta(seconds=10)
    assert worker.run_once() == 1
    second = row(db, ident)
    assert (second["state"], second["attempts"]) == (State.RETRYING, 2)
    assert as_utc(second["next_attempt_at"]) == clock.now + timedelta(seconds=30)  # type: ignore[arg-type]

    clock.now += timedelta(seconds=30)
    assert worker.run_once() == 1
    last = row(db, ident)
    assert (last["state"], last["attempts"]) == (State.DEAD_LETTERED, 3)
    assert last["next_attempt_at"] is None
    assert [(e["state"], e["attempt"]) for e in events_of(db, ident)] == [
        (State.RETRYING, 1),
        (State.RETRYING, 2),
        (State.DEAD_LETTERED, 3),
    ]
    assert worker.run_once() == 0


def test_backoff_grows_exponentially_up_to_its_cap() -> None:
    policy = ErrorPolicy(backoff=Backoff(initial_seconds=1, multiplier=2, max_seconds=5))
    assert [backoff_delay(policy, n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_a_message_retried_successfully_is_delivered(
    db: Engine, hospital: ChannelConfig, clock: Clock
) -> None:
    channel, once, worker = store_failing_once(db, hospital)
    [ident] = receive(db, channel, oru("ORU-1"))
    worker.run_once()
    clock.now += timedelta(seconds=10)
    worker.run_once()
    assert row(db, ident)["state"] == State.DELIVERED
    assert once.written == [ident]


def test_replaying_a_dead_letter_twice_applies_it_once(
    db: Engine, hospital: ChannelConfig, clock: Clock
) -> None:
    policy = ErrorPolicy(max_attempts=1)
    failing = hospital.model_copy(update={"errors": policy})
    register_patient(db, hospital)
    [ident] = receive(db, hospital, oru("ORU-1", glucose="182"))
    down = Worker(db, Journal(db), {failing.name: Pipeline(failing, {"store": Flaky("store", 1)})})
    run_until_idle(down)
    assert row(db, ident)["state"] == State.DEAD_LETTERED

    worker = Worker(db, Journal(db), {hospital.name: build_pipeline(hospital)})
    with db.connect() as conn:
        assert queries.replay(conn, [ident], "alice") == [ident]
        assert queries.replay(conn, [ident], "alice") == []
    run_until_idle(worker)
    with db.connect() as conn:
        assert queries.replay(conn, [ident], "alice") == []
    run_until_idle(worker)

    assert row(db, ident)["state"] == State.DELIVERED
    assert observation_values(db) == [(ident, "1554-5", "182"), (ident, "2345-7", "140")]
    assert [e["code"] for e in events_of(db, ident)] == ["store_unavailable", "replayed"]


def test_a_patients_later_message_waits_for_its_earlier_message_in_the_same_batch(
    db: Engine, hospital: ChannelConfig, clock: Clock
) -> None:
    channel, once, worker = store_failing_once(db, hospital)
    first, second = receive(db, channel, oru("ORU-1"), oru("ORU-2"))
    worker.run_once()
    assert row(db, first)["state"] == State.RETRYING
    assert row(db, second)["state"] == State.RECEIVED
    clock.now += timedelta(seconds=10)
    run_until_idle(worker)
    assert once.written == [first, second]


def test_a_retry_after_a_later_destination_failed_still_writes_the_record_store(
    db: Engine, hospital: ChannelConfig, clock: Clock
) -> None:
    policy = ErrorPolicy(max_attempts=3, backoff=Backoff(initial_seconds=10))
    channel = hospital.model_copy(
        update={
            "errors": policy,
            "destinations": {**hospital.destinations, "copy": hospital.destinations["store"]},
            "routes": (),
        }
    )
    store = build_pipeline(hospital).destinations["store"]
    pipeline = Pipeline(channel, {"store": store, "copy": Flaky("copy", failures=1)})
    [route] = [s for s in pipeline.stages if isinstance(s, Route)]
    assert route.router.rules[0].to == ("store", "copy")
    worker = Worker(db, Journal(db), {channel.name: pipeline})
    register_patient(db, hospital)
    [ident] = receive(db, channel, oru("ORU-1", glucose="182"))
    worker.run_once()
    assert row(db, ident)["state"] == State.RETRYING
    assert observation_values(db) == []  # rolled back with the failed attempt
    clock.now += timedelta(seconds=10)
    worker.run_once()
    assert row(db, ident)["state"] == State.DELIVERED
    assert observation_values(db) == [(ident, "1554-5", "182"), (ident, "2345-7", "140")]


def test_a_result_for_a_patient_not_known_yet_is_held_until_a_registration_releases_it(
    db: Engine, hospital: ChannelConfig, clock: Clock
) -> None:
    worker = Worker(db, Journal(db), {hospital.name: build_pipeline(hospital)})
    [result] = receive(db, hospital, oru("ORU-1", glucose="182"))
    run_until_idle(worker)
    held = row(db, result)
    assert (held["state"], held["error_stage"], held["error_code"]) == (
        State.HELD,
        "identify",
        "902",
    )
    assert held["next_attempt_at"] is None
    assert observation_values(db) == []
    assert worker.run_once() == 0  # a held message is not retried

    clock.now += timedelta(minutes=5)
    [registration] = receive(db, hospital, a28("A28-1"))
    run_until_idle(worker)
    assert row(db, registration)["state"] == State.DELIVERED
    delivered = row(db, result)
    assert (delivered["state"], delivered["error_code"]) == (State.DELIVERED, None)
    assert observation_values(db) == [(result, "1554-5", "182"), (result, "2345-7", "140")]
    assert [(e["state"], e["stage"], e["code"]) for e in events_of(db, result)] == [
        (State.HELD, "identify", "902"),
        (State.RECEIVED, "identity", "released"),
    ]
    assert delivered["attempts"] == 1  # holding is not an attempt: only the delivery counts
