"""Contract 2 (DESIGN.md §3): every message ends in exactly one visible state. A message the
pipeline delivered, one it filtered and one refused at intake each have one journal row in its
end state; the history (``journal_events``, which records refusals and retries) never names
another end state for it, and a refusal is recorded there once."""

from __future__ import annotations

from pathlib import Path

from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine

CHANNEL = """
  - name: adt
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    steps:
      - type: filter
        drop: {{fields: [{{field: MSH-11.1, equals: T}}]}}
    destinations: {{store: {{type: record_store}}}}
"""
END_STATES = {"delivered", "filtered", "dead_lettered", "discarded"}


def adt(cid: str, processing: str = "P", kind: str = "ADT^A28^ADT_A05") -> str:
    return (
        f"MSH|^~\\&|GAM|CHU|DPI|CHU|20240306111154||{kind}|{cid}|{processing}|2.5\r"
        f"PID|1||{cid}^^^CHU^PI||NOM^JEANNE^^^^^L||19800101|F\r"
    )


def test_contract_2_each_message_ends_in_exactly_one_visible_state(tmp_path: Path) -> None:
    engine = InProcessEngine(ENGINE_HEAD + CHANNEL, url=f"sqlite:///{tmp_path / 'e.db'}")
    try:
        codes = engine.send(adt("KEPT"), adt("TEST", processing="T"), adt("SIU", kind="SIU^S12"))
        assert codes == ["AA", "AA", "AR"]
        rows = engine.rows("SELECT id, control_id, state FROM journal_messages ORDER BY id")
        events = engine.rows("SELECT message_id, state FROM journal_events ORDER BY id")
    finally:
        engine.stop()
    assert [(r[1], r[2]) for r in rows] == [
        ("KEPT", "delivered"),
        ("TEST", "filtered"),
        ("SIU", "dead_lettered"),
    ]
    for message_id, _, state in rows:
        ends = [e[1] for e in events if e[0] == message_id and e[1] in END_STATES]
        assert ends == ([] if state != "dead_lettered" else [state]), (message_id, ends)
