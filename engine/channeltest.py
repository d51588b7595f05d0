"""Channel tests written as data (YAML): input messages and the outcome expected.

A case file names a channels file and a channel, then lists cases. Each case runs on a fresh
temporary SQLite database through the real intake, journal, pipeline and destinations (no
sockets) and compares ACK codes, end states, dead letters and record-store rows::

    channels: ../../channels.yaml
    channel: hospital_hl7
    cases:
      - name: a lab result is stored
        messages:
          - file: samples/oru.hl7          # relative to this file; or `hl7: |` inline
        expect:
          acks: [AA]
          states: [delivered]
          counts: {store_patients: 1, store_observations: 3}
          rows:
            - table: store_observations
              where: {code: "1554-5"}
              values: {value: "182", unit: "mg/dl"}
          fields:                          # after the transform and python steps
            - message: 1                   # 1-based; default 1
              destination: store           # default: the first (by name) it went to
              values: {"MSH-5": DMP, "OBX[2]-3.1": "2345-7"}
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from engine.channels.config import ChannelConfig, EngineSettings
from engine.channels.loader import load_channels
from engine.db import make_engine
from engine.errors import EngineError
from engine.hl7v2.editable import EditableMessage
from engine.hl7v2.reader import Message
from engine.intake.inbox import rules_for
from engine.journal import transformed
from engine.journal.journal import Journal
from engine.journal.message_tables import State, messages
from engine.migrate import upgrade
from engine.pipeline.payloads import journaled_message
from engine.pipeline.worker import Worker
from engine.runtime.wiring import build_pipeline
from engine.store import table_reads


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputMessage(Strict):
    file: str | None = None
    hl7: str | None = Field(default=None, description="inline text; lines become segments")


class RowExpectation(Strict):
    table: str
    where: dict[str, Any] = Field(default_factory=dict)
    values: dict[str, Any] = Field(default_factory=dict)
    count: int | None = None


class DeadLetterExpectation(Strict):
    code: str
    stage: str | None = None


class FieldsExpectation(Strict):
    """Field values of a message as a destination received it (its transformed form, or the
    message as received when no step changed it)."""

    message: int = Field(default=1, ge=1, description="which input message, from 1")
    destination: str | None = None
    values: dict[str, str] = Field(min_length=1, description="HL7 path -> expected value")


class Expectation(Strict):
    acks: list[str] | None = None
    states: list[State] | None = None
    dead_letters: list[DeadLetterExpectation] | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    rows: list[RowExpectation] = Field(default_factory=list)
    fields: list[FieldsExpectation] = Field(default_factory=list)


class Case(Strict):
    name: str
    messages: list[InputMessage] = Field(min_length=1)
    expect: Expectation


class CaseFile(Strict):
    channels: str
    channel: str
    cases: list[Case] = Field(min_length=1)


@dataclass
class CaseResult:
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def is_case_file(path: Path) -> bool:
    """Whether a YAML file is a channel test file (``channels``, ``channel`` and ``cases``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and {"channels", "channel", "cases"} <= data.keys()


def run_case_file(path: Path) -> list[CaseResult]:
    spec = CaseFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    config = load_channels(path.parent / spec.channels)
    channel = next((c for c in config.channels if c.name == spec.channel), None)
    if channel is None:
        return [CaseResult(spec.channel, [f"no channel {spec.channel!r} in {spec.channels}"])]
    return [run_case(channel, case, path.parent, config.engine) for case in spec.cases]


def run_case(
    channel: ChannelConfig, case: Case, base: Path, settings: EngineSettings | None = None
) -> CaseResult:
    result = CaseResult(case.name)
    with tempfile.TemporaryDirectory() as tmp:
        db = make_engine(f"sqlite:///{tmp}/case.db", durability="normal")
        try:
            upgrade(db)
            acks = _feed(db, channel, [_payload(m, base) for m in case.messages])
            worker = Worker(db, Journal(db), {channel.name: build_pipeline(channel, settings)})
            while worker.run_once():
                pass
            with db.connect() as conn:
                _compare(conn, case.expect, acks, result.problems)
        finally:
            db.dispose()
    return result


def _payload(m: InputMessage, base: Path) -> bytes:
    if m.file is not None:
        return (base / m.file).read_bytes()
    assert m.hl7 is not None
    return m.hl7.strip().replace("\n", "\r").encode("utf-8")


def _feed(db: Any, channel: ChannelConfig, payloads: list[bytes]) -> list[str]:
    intake = rules_for(channel)
    journal = Journal(db)
    codes: list[str] = []
    with db.connect() as conn:
        for payload in payloads:
            prepared = intake.prepare(payload, "channel-test")
            appended = journal.append(conn, [prepared.row])[0]
            ack = intake.ack(prepared, appended, None)
            codes.append(_ack_code(ack))
    return codes


def _ack_code(ack: bytes | None) -> str:
    if ack is None:
        return "none"
    try:
        return Message(ack.decode("utf-8", errors="replace")).get("MSA-1")
    except EngineError:
        return "??"


def _compare(conn: Connection, exp: Expectation, acks: list[str], problems: list[str]) -> None:
    if exp.acks is not None and acks != exp.acks:
        problems.append(f"ACK codes: expected {exp.acks}, got {acks}")
    journal_rows = conn.execute(
        select(messages.c.state, messages.c.error_code, messages.c.error_stage).order_by(
            messages.c.id
        )
    ).all()
    states = [r[0] for r in journal_rows]
    if exp.states is not None and states != exp.states:
        problems.append(f"states: expected {[str(x) for x in exp.states]}, got {states}")
    if exp.dead_letters is not None:
        got = [(r[1], r[2]) for r in journal_rows if r[0] == "dead_lettered"]
        want = [(d.code, d.stage) for d in exp.dead_letters]
        if [g[0] for g in got] != [w[0] for w in want] or any(
            w[1] is not None and w[1] != g[1] for g, w in zip(got, want, strict=False)
        ):
            problems.append(f"dead letters (code, stage): expected {want}, got {got}")
    for name, expected in exp.counts.items():
        n = table_reads.count(conn, name)
        if n != expected:
            problems.append(f"{name}: expected {expected} rows, got {n}")
    for row in exp.rows:
        _compare_rows(conn, row, problems)
    ids = [r[0] for r in conn.execute(select(messages.c.id).order_by(messages.c.id))]
    for fields in exp.fields:
        _compare_fields(conn, ids, fields, problems)


def _compare_fields(
    conn: Connection, ids: list[int], exp: FieldsExpectation, problems: list[str]
) -> None:
    if exp.message > len(ids):
        problems.append(f"fields: no message {exp.message} (journaled: {len(ids)})")
        return
    ident = ids[exp.message - 1]
    row = conn.execute(
        select(messages.c.raw, messages.c.charset, messages.c.delivered_to).where(
            messages.c.id == ident
        )
    ).one()
    forms = transformed.forms(conn, ident)
    delivered = [d for d in str(row.delivered_to or "").split(",") if d]
    destination = exp.destination or (delivered[0] if delivered else None)
    raw = forms.get(destination, bytes(row.raw)) if destination else bytes(row.raw)
    msg = journaled_message(raw, row.charset)
    editable = EditableMessage(msg)
    where = f"message {exp.message}" + (f" to {destination}" if destination else "")
    for path, expected in exp.values.items():
        try:
            got = editable.get(path)
        except ValueError as exc:
            problems.append(f"fields of {where}: {exc}")
            continue
        if got != expected:
            problems.append(f"fields of {where}: {path} is {got!r}, expected {expected!r}")


def _compare_rows(conn: Connection, exp: RowExpectation, problems: list[str]) -> None:
    found = table_reads.rows_where(conn, exp.table, exp.where)
    if exp.count is not None and len(found) != exp.count:
        problems.append(
            f"{exp.table} where {exp.where}: expected {exp.count} rows, got {len(found)}"
        )
    if not found:
        if exp.count is None or exp.values:
            problems.append(f"{exp.table}: no row where {exp.where}")
        return
    for key, value in exp.values.items():
        got = found[0].get(key)
        if str(got) != str(value):
            problems.append(f"{exp.table} where {exp.where}: {key} is {got!r}, expected {value!r}")
