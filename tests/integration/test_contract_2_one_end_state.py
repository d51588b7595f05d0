"""Contract 2 (DESIGN.md §3): every message ends in exactly one visible state. One engine gets
a message for each state a message ends or waits in: delivered, filtered (a filter step),
dead_lettered (refused at intake), discarded (a dead letter an operator ended), held (its
patient is not known yet: 902) and review (its traits contradict the known patient's:
903-905). Each has one journal row, in that state; its history (``journal_events``, which
records refusals, waits and operator actions) names the states it went through, that one
last; and ``aiguillage trace`` on its control id answers with that one message in that one
state."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine.cli.main import app
from tests.integration.identity_harness import adt, msh, nir, oru, pid
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine

CHANNEL = """
  - name: hospital
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*", "ORU^R01"]
    steps:
      - type: filter
        drop: {{fields: [{{field: MSH-11.1, equals: T}}]}}
    destinations: {{store: {{type: record_store}}}}
"""
INS = nir("2790351215189")  # the ANS test patient


def in_test_mode(message: str, control_id: str) -> str:
    """``message`` with MSH-11 (processing id) T: the channel's filter drops it."""
    return message.replace(f"|{control_id}|P|", f"|{control_id}|T|")


def unsupported(control_id: str) -> str:
    """A message type the channel does not accept: refused at intake (AR)."""
    return "\r".join([msh("SIU^S12", control_id), pid("IPP3")])


@dataclass(frozen=True)
class Case:
    control_id: str
    message: str
    ack: str
    #: The states its history names, in order (a delivery or a filter records no event).
    history: tuple[str, ...]


#: Per state, the message that ends (or waits) in it, sent in this order: the review case
#: names the INS that the delivered registration gave its patient.
CASES = {
    "delivered": Case("KEPT", adt("A28", pid("IPP1", INS), "KEPT"), "AA", ()),
    "filtered": Case("TEST", in_test_mode(adt("A28", pid("IPP2"), "TEST"), "TEST"), "AA", ()),
    "dead_lettered": Case("REFUSED", unsupported("REFUSED"), "AR", ("dead_lettered",)),
    "discarded": Case("GONE", unsupported("GONE"), "AR", ("dead_lettered", "discarded")),
    "held": Case("WAIT", oru(pid("IPP9"), "WAIT"), "AA", ("held",)),
    "review": Case("DOUBT", oru(pid("", INS, dob="19790329"), "DOUBT"), "AA", ("review",)),
}


@dataclass(frozen=True)
class Outcome:
    url: str
    acks: dict[str, str]  # control id -> MSA-1
    rows: list[tuple[object, ...]]  # (id, control id, state) of each journal row
    events: list[tuple[object, ...]]  # (message id, state) of each journal event


def aiguillage(url: str, *args: str) -> Result:
    """The operators' command line on the engine's database."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIGUILLAGE_DATABASE_URL", url)
        return CliRunner().invoke(app, [*args, "--config", str(Path("absent.yaml"))])


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    url = f"sqlite:///{tmp_path_factory.mktemp('contract_2') / 'e.db'}"
    engine = InProcessEngine(ENGINE_HEAD + CHANNEL, url=url)
    try:
        codes = engine.send(*(case.message for case in CASES.values()))
        gone = CASES["discarded"].control_id
        [(message_id,)] = engine.rows(
            "SELECT id FROM journal_messages WHERE control_id = :c", c=gone
        )
        discard = aiguillage(url, "dlq", "discard", str(message_id), "--reason", "sent in error")
        assert discard.exit_code == 0, discard.output
        rows = engine.rows("SELECT id, control_id, state FROM journal_messages ORDER BY id")
        events = engine.rows("SELECT message_id, state FROM journal_events ORDER BY id")
    finally:
        engine.stop()
    acks = dict(zip((case.control_id for case in CASES.values()), codes, strict=True))
    return Outcome(url, acks, rows, events)


@pytest.mark.parametrize("state", CASES)
def test_contract_2_each_message_ends_in_exactly_one_visible_state(
    state: str, outcome: Outcome
) -> None:
    case = CASES[state]
    assert outcome.acks[case.control_id] == case.ack
    mine = [(r[0], r[2]) for r in outcome.rows if r[1] == case.control_id]
    assert [s for _, s in mine] == [state], mine
    [(message_id, _)] = mine
    assert [e[1] for e in outcome.events if e[0] == message_id] == list(case.history)
    # What an operator sees asking "what happened to this message?"
    traced = aiguillage(outcome.url, "trace", case.control_id, "--json")
    assert traced.exit_code == 0, traced.output
    assert [
        (t["id"], t["state"], [h["state"] for h in t["history"]]) for t in json.loads(traced.stdout)
    ] == [(message_id, state, list(case.history))]
