"""The in-memory twin of the destinations: a pipeline test with no socket and no peer. The
channel test runner feeds the real intake, journal and pipeline; the memory box records what
was delivered, and scripted failures stand in for a peer that refuses or is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.adapters.memory import MemoryBox, box, drop_box
from engine.channels.loader import parse_channels
from engine.channeltest import Case, run_case

CHANNELS = """
engine: {database_url: "sqlite:///unused.db"}
channels:
  - name: lab
    source: {type: mllp, port: 2575}
    accept: ["ADT^*"]
    destinations: {twin: {type: memory, box: contract-box}}
    # A retry falls due an hour later: the runner, which runs until nothing is due, never
    # reaches it, however slow the machine (with the default 1 s it could, and deliver).
    errors: {backoff: {initial_seconds: 3600}}
"""


def adt(control_id: str) -> str:
    return (
        f"MSH|^~\\&|GAM|CHU|DPI|CHU|20240306111154||ADT^A28^ADT_A05|{control_id}|P|2.5\n"
        f"PID|1||{control_id}^^^CHU^PI||NOM^JEANNE^^^^^L||19800101|F"
    )


@pytest.fixture
def memory() -> Iterator[MemoryBox]:
    yield box("contract-box")
    drop_box("contract-box")


def run(messages: list[str], expect: dict[str, object]) -> list[str]:
    [channel] = parse_channels(CHANNELS).channels
    case = Case.model_validate(
        {"name": "memory", "messages": [{"hl7": m} for m in messages], "expect": expect}
    )
    return run_case(channel, case, Path(".")).problems


def test_deliveries_reach_the_box_in_order_with_their_bytes(memory: MemoryBox) -> None:
    problems = run([adt("A"), adt("B")], {"acks": ["AA", "AA"], "states": ["delivered"] * 2})
    assert problems == []
    assert [k.raw.split(b"|")[9] for k in memory.kept] == [b"A", b"B"]
    assert {(k.channel, k.kind) for k in memory.kept} == {("lab", "message")}


def test_a_scripted_refusal_dead_letters_that_message_only(memory: MemoryBox) -> None:
    memory.fail_next("rejected")
    expect = {
        "states": ["dead_lettered", "delivered"],
        "dead_letters": [{"code": "destination_rejected"}],
    }
    assert run([adt("A"), adt("B")], expect) == []
    assert [k.raw.split(b"|")[9] for k in memory.kept] == [b"B"]
    assert memory.attempts == 2


def test_a_scripted_outage_leaves_the_message_retrying_not_lost(memory: MemoryBox) -> None:
    memory.fail_next("unavailable")
    assert run([adt("A")], {"states": ["retrying"]}) == []
    assert memory.kept == [] and memory.attempts == 1
