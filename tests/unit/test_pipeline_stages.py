"""Each pipeline stage alone, without sockets: parse, the channel's steps, route, transform,
identify and deliver on one message, with the in-memory destination and the record store on a
SQLite file (DESIGN.md §2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, insert, select

from engine.adapters.memory import MemoryDestination, box, drop_box
from engine.adapters.record_store import RecordStore
from engine.channels.config import ChannelConfig
from engine.db import make_engine, metadata
from engine.errors import PatientNotKnown, TransformError, UnsupportedMessageType
from engine.hl7v2.reader import Message
from engine.identity.rules import IdentityPolicy
from engine.journal import transformed
from engine.journal.message_tables import State, messages
from engine.journal.records import Pending
from engine.pipeline.channel_steps import step_stages
from engine.pipeline.delivery import Delivery, Destination
from engine.pipeline.pipeline import Pipeline, build_stages
from engine.pipeline.stage_deliver import Deliver
from engine.pipeline.stage_identify import Identify
from engine.pipeline.stage_parse import Parse
from engine.pipeline.stage_route import Route
from engine.pipeline.stage_transform import MapForStore
from engine.pipeline.stages import StageError, Work
from engine.routes.conditions import Condition
from engine.routes.router import Router, RouteRule
from engine.store.record_core import observations
from tests.conftest import store_tables

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BOX = "stages-test"


def oru(patient: str = "000003", facility: str = "LAB-A") -> bytes:
    return "\r".join(
        [
            f"MSH|^~\\&|LABO|{facility}|DPI|CHU-X|20240306111154||ORU^R01^ORU_R01|ORU-1|P|2.5",
            f"PID|1||{patient}^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F",
            "OBR|1|845439^LABO|986^LABO|24323-8^Panel^LN|||20240306101010",
            "OBX|1|NM|1554-5^Glucose^LN||182|mg/dl|70-105|H|||F",
            "OBX|2|NM|2345-7^Sodium^LN||140|mmol/l|135-145|N|||F",
        ]
    ).encode()


def a28(patient: str = "000003") -> bytes:
    return "\r".join(
        [
            "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306101154||ADT^A28^ADT_A05|A28-1|P|2.5",
            "EVN|A28|20240306101154",
            f"PID|1||{patient}^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F",
        ]
    ).encode()


def channel(**changes: Any) -> ChannelConfig:
    """A lab channel filing results into ``store`` and copying them to ``copy``."""
    config: dict[str, Any] = {
        "name": "lab",
        "source": {"type": "mllp", "port": 12999},
        "accept": ["ORU^R01", "ADT^A28"],
        "destinations": {
            "store": {"type": "record_store"},
            "copy": {"type": "memory", "box": BOX},
        },
    }
    return ChannelConfig.model_validate(config | changes)


@pytest.fixture
def destinations() -> Iterator[dict[str, Destination]]:
    store = RecordStore("store", IdentityPolicy(accept_test_ins=True))
    yield {"store": store, "copy": MemoryDestination("copy", box(BOX))}
    drop_box(BOX)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'stages.db'}")
    with engine.begin() as conn:
        metadata.create_all(conn, tables=store_tables())
    yield engine
    engine.dispose()


def journaled(conn: Connection, raw: bytes) -> None:
    """Message 1 in the journal (the route stage journals the copies a step changed)."""
    values = {"channel": "lab", "received_at": NOW, "updated_at": NOW, "state": "received"}
    values.update(ack_code="AA", size=len(raw), content_hash="-", raw=raw)
    conn.execute(insert(messages).values(id=1, **values))


def work(conn: Connection, raw: bytes, ident: int = 1) -> Work:
    pending = Pending(ident, "lab", raw, "", "000003^CHU-X", 0, sender="lab:LABO^LAB-A")
    return Work(conn, pending, NOW)


def parsed(conn: Connection, raw: bytes, ident: int = 1) -> Work:
    w = work(conn, raw, ident)
    Parse("lab", ("ORU^R01", "ADT^A28")).run(w)
    return w


def routed(conn: Connection, config: ChannelConfig, raw: bytes, ident: int = 1) -> Work:
    w = parsed(conn, raw, ident)
    Route(config).run(w)
    return w


# -- the list ---------------------------------------------------------------------------------


def test_the_stages_run_in_the_order_of_the_flow(destinations: dict[str, Destination]) -> None:
    steps = [
        {"type": "validate"},
        {"type": "filter", "drop": {"sending_facilities": ["TEST-LAB"]}},
        {"type": "transform", "ops": [{"op": "set", "field": "MSH-5", "value": "DMP"}]},
    ]
    names = [s.name for s in build_stages(channel(steps=steps), destinations)]
    assert names == [
        "parse",
        "validate",
        "filter",
        "transform",
        "route",
        "transform",
        "identify",
        "deliver",
    ]


def test_a_channel_without_a_record_store_has_no_identify_stage() -> None:
    config = channel(destinations={"copy": {"type": "memory", "box": BOX}})
    names = [s.name for s in build_stages(config, {"copy": MemoryDestination("copy", box(BOX))})]
    assert names == ["parse", "route", "deliver"]
    drop_box(BOX)


# -- parse ------------------------------------------------------------------------------------


def test_parse_reads_the_journaled_bytes_back(db: Engine) -> None:
    with db.connect() as conn:
        w = parsed(conn, oru())
    assert isinstance(w.payload, Message)
    assert (w.message.message_type, w.message.trigger) == ("ORU", "R01")
    assert w.parsed is w.payload


def test_parse_refuses_a_type_the_channel_does_not_accept_under_accept(db: Engine) -> None:
    siu = oru().replace(b"ORU^R01^ORU_R01", b"SIU^S12^SIU_S12")
    with db.connect() as conn, pytest.raises(StageError) as caught:
        parsed(conn, siu)
    assert caught.value.stage == "accept"
    assert isinstance(caught.value.error, UnsupportedMessageType)


# -- the channel's steps ----------------------------------------------------------------------


def test_a_filter_step_ends_the_message_as_filtered(db: Engine) -> None:
    steps = [{"type": "filter", "drop": {"sending_facilities": ["TEST-LAB"]}}]
    [drop] = step_stages(channel(steps=steps))
    with db.connect() as conn:
        kept, dropped = parsed(conn, oru()), parsed(conn, oru(facility="TEST-LAB"))
    drop.run(kept)
    drop.run(dropped)
    assert (kept.filtered, dropped.filtered) == ("", "filter step")


def test_a_transform_step_changes_the_message_the_later_stages_see(db: Engine) -> None:
    steps = [{"type": "transform", "ops": [{"op": "set", "field": "MSH-5", "value": "DMP"}]}]
    [edit] = step_stages(channel(steps=steps))
    with db.connect() as conn:
        w = parsed(conn, oru())
    edit.run(w)
    assert w.message.get("MSH-5") == "DMP"
    assert w.parsed is not None and w.parsed.get("MSH-5") == "DPI"


# -- route ------------------------------------------------------------------------------------


def test_the_router_gives_a_destination_the_first_matching_routes_form() -> None:
    def mark(msg: Message) -> Message:
        raise AssertionError("the steps of a route that does not match never run")

    rules = [
        RouteRule(Condition(message_types=("ORU^R01",)), ("store",)),
        RouteRule(Condition(), ("store", "copy")),
        RouteRule(Condition(message_types=("ADT^*",)), ("archive",), (mark,)),
    ]
    chosen = Router(rules).choose(Message(oru().decode()))
    assert [(t.names, t.edits) for t in chosen] == [(("store",), ()), (("copy",), ())]


def test_route_gives_each_target_its_copy_and_bytes(db: Engine) -> None:
    routes = [
        {"to": ["store"]},
        {
            "to": ["copy"],
            "steps": [
                {"type": "transform", "ops": [{"op": "set", "field": "MSH-5", "value": "X"}]}
            ],
        },
    ]
    with db.begin() as conn:
        journaled(conn, oru())
        w = routed(conn, channel(routes=routes), oru())
        kept = transformed.forms(conn, 1)
    store, copy = w.forms["store"], w.forms["copy"]
    assert store == (w.parsed, oru())  # unchanged: the journaled bytes as they came
    assert copy[1] == oru().replace(b"|DPI|CHU-X|", b"|X|CHU-X|")
    assert kept == {"copy": copy[1]}  # the changed copy is journaled


def test_a_message_no_route_takes_ends_as_filtered(db: Engine) -> None:
    routes = [{"when": {"message_types": ["ADT^*"]}, "to": ["store"]}]
    with db.connect() as conn:
        w = routed(conn, channel(routes=routes), oru())
    assert (w.filtered, w.forms) == ("no route matched", {})


# -- transform and identify -------------------------------------------------------------------


def test_transform_maps_only_what_goes_to_a_record_store(
    db: Engine, destinations: dict[str, Destination]
) -> None:
    store = destinations["store"]
    assert isinstance(store, RecordStore)
    with db.connect() as conn:
        w = routed(conn, channel(), oru())
    MapForStore({"store": store.rules}).run(w)
    assert list(w.operations) == ["store"]
    op = w.operations["store"]
    assert op.kind == "add_results"
    assert [o.code for o in op.observations] == ["1554-5", "2345-7"]


def test_identify_holds_a_result_whose_patient_is_not_known(
    db: Engine, destinations: dict[str, Destination]
) -> None:
    store = destinations["store"]
    assert isinstance(store, RecordStore)
    with db.connect() as conn:
        w = routed(conn, channel(), oru())
        MapForStore({"store": store.rules}).run(w)
        with pytest.raises(PatientNotKnown):
            Identify({"store": store.rules}).run(w)
    assert w.filed == {}


def test_identify_files_a_result_under_the_patient_an_adt_made_known(
    db: Engine, destinations: dict[str, Destination]
) -> None:
    store = destinations["store"]
    assert isinstance(store, RecordStore)
    stages = (MapForStore({"store": store.rules}), Identify({"store": store.rules}))
    with db.begin() as conn:
        registration = routed(conn, channel(), a28(), ident=1)
        result = routed(conn, channel(), oru(), ident=2)
        for w in (registration, result):
            for s in stages:
                s.run(w)
    patient = registration.filed["store"].patient_id
    assert result.filed["store"].patient_id == patient
    assert result.filed["store"].operation is result.operations["store"]


# -- deliver ----------------------------------------------------------------------------------


def test_deliver_hands_each_target_its_copy_with_the_sender(
    db: Engine, destinations: dict[str, Destination]
) -> None:
    config = channel(routes=[{"to": ["copy"]}])
    with db.connect() as conn:
        w = routed(conn, config, oru())
        Deliver("lab", destinations).run(w)
    [kept] = box(BOX).kept
    assert (kept.message_id, kept.raw, kept.sender) == (1, oru(), "lab:LABO^LAB-A")
    assert w.pending.delivered_to == {"copy"}


def test_a_failed_delivery_names_its_destination(
    db: Engine, destinations: dict[str, Destination]
) -> None:
    box(BOX).fail_next("rejected")
    with db.connect() as conn, pytest.raises(StageError) as caught:
        w = routed(conn, channel(routes=[{"to": ["copy"]}]), oru())
        Deliver("lab", destinations).run(w)
    assert caught.value.stage == "destination:copy"


def test_the_record_store_writes_only_what_the_identify_stage_filed(
    db: Engine, destinations: dict[str, Destination]
) -> None:
    with db.begin() as conn, pytest.raises(TransformError):
        destinations["store"].write(Delivery(conn, 1, "lab", Message(oru().decode()), oru(), NOW))


# -- the pipeline -----------------------------------------------------------------------------


def test_a_result_for_an_unknown_patient_stops_at_identify_before_any_delivery(
    db: Engine, destinations: dict[str, Destination]
) -> None:
    pipeline = Pipeline(channel(), destinations)
    with db.begin() as conn, pytest.raises(StageError) as caught:
        pipeline.process(conn, work(conn, oru()).pending, NOW)
    assert caught.value.stage == "identify"
    assert caught.value.error.code == "902"
    assert box(BOX).kept == []  # not copied anywhere while its patient is uncertain


def test_the_pipeline_files_a_known_patients_result_and_copies_it(
    db: Engine, destinations: dict[str, Destination]
) -> None:
    pipeline = Pipeline(channel(), destinations)
    with db.begin() as conn:
        first = pipeline.process(conn, work(conn, a28(), 1).pending, NOW)
        second = pipeline.process(conn, work(conn, oru(), 2).pending, NOW)
    assert (first.state, second.state) == (State.DELIVERED, State.DELIVERED)
    with db.connect() as conn:
        count = conn.execute(select(func.count()).select_from(observations)).scalar()
    assert count == 2
    assert [k.message_id for k in box(BOX).kept] == [1, 2]
