"""Raw beside transformed: the journal keeps each destination's transformed form, trace shows
the field diff, a replay starts again from the raw bytes; the dry run touches no journal."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from engine.channels.loader import load_channels
from engine.cli.main import app
from engine.db import make_engine
from engine.intake.inbox import rules_for
from engine.journal import lookups as queries
from engine.journal import transformed
from engine.journal.journal import Journal
from engine.journal.message_tables import messages
from engine.migrate import upgrade
from engine.runtime.wiring import build_worker

ORU = (
    "MSH|^~\\&|LABO|LAB-A|DPI|CHU-X|20240306111154||ORU^R01^ORU_R01|LAB-9|P|2.5\r"
    "PID|1||000003^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F\r"
    "OBX|1|NM|GLY^Glycemie^L||1.82|g/l\r"
    "OBX|2|NM|LOCAL1^Local^L||3|g/l"
)


def setup(tmp_path: Path) -> Path:
    table = tmp_path / "codes.csv"
    table.write_text("from,to,to_system\nGLY,2345-7,LN\n", encoding="utf-8")
    config = tmp_path / "channels.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            engine:
              database_url: sqlite:///{tmp_path}/journal.db
            channels:
              - name: lab
                source: {{type: mllp, port: 12598}}
                accept: ["ORU^R01"]
                steps:
                  - type: transform
                    ops:
                      - {{op: map, field: "OBX[*]-3", table: {table}, unmapped: dead_letter}}
                destinations:
                  out: {{type: file, directory: {tmp_path}/out}}
            """
        ),
        encoding="utf-8",
    )
    return config


def receive_and_run(config_path: Path) -> int:
    config = load_channels(config_path)
    db = make_engine(str(config.engine.database_url))
    upgrade(db)
    journal = Journal(db)
    with db.connect() as conn:
        prepared = rules_for(config.channels[0]).prepare(ORU.encode(), "test")
        ident = journal.append(conn, [prepared.row])[0].id
        conn.commit()
    worker = build_worker(config, db)
    while worker.run_once():
        pass
    db.dispose()
    return ident


def run_again(config_path: Path) -> None:
    config = load_channels(config_path)
    db = make_engine(str(config.engine.database_url))
    worker = build_worker(config, db)
    while worker.run_once():
        pass
    db.dispose()


def test_an_unmapped_code_then_a_new_row_and_a_replay_from_the_raw_message(tmp_path: Path) -> None:
    config_path = setup(tmp_path)
    ident = receive_and_run(config_path)
    db = make_engine(f"sqlite:///{tmp_path}/journal.db")
    with db.connect() as conn:
        row = conn.execute(select(messages).where(messages.c.id == ident)).one()
        assert (row.state, row.error_code) == ("dead_lettered", "unmapped_code")
        assert row.error_reason.startswith("OBX[2]-3: code 'LOCAL1' is not in code table")
        assert transformed.forms(conn, ident) == {}
        # the operator adds the row, reloads, replays
        (tmp_path / "codes.csv").write_text(
            "from,to,to_system\nGLY,2345-7,LN\nLOCAL1,2160-0,LN\n", encoding="utf-8"
        )
        assert queries.replay(conn, [ident], "test") == [ident]
    run_again(config_path)
    with db.connect() as conn:
        row = conn.execute(select(messages).where(messages.c.id == ident)).one()
        assert row.state == "delivered"
        assert bytes(row.raw) == ORU.encode()  # the raw bytes stay as received
        forms = transformed.forms(conn, ident)
    db.dispose()
    assert list(forms) == ["out"]
    assert b"OBX|1|NM|2345-7^Glycemie^LN|" in forms["out"]
    assert b"OBX|2|NM|2160-0^Local^LN|" in forms["out"]
    assert (tmp_path / "out" / "lab" / f"{ident}.hl7").read_bytes() == forms["out"]

    result = CliRunner().invoke(app, ["trace", str(ident), "--config", str(config_path)])
    assert result.exit_code == 0, result.output
    assert "transformed for out: 2 change(s)" in result.stdout
    assert "OBX[1]-3: 'GLY^Glycemie^L' -> '2345-7^Glycemie^LN'" in result.stdout
    result = CliRunner().invoke(
        app, ["trace", str(ident), "--config", str(config_path), "--json", "--payloads"]
    )
    [traced] = json.loads(result.stdout)
    assert traced["transformed"][0]["raw"] == ORU
    assert traced["transformed"][0]["changes"][1]["after"] == "2160-0^Local^LN"


def test_the_dry_run_prints_changes_and_outcome_without_a_journal_row(tmp_path: Path) -> None:
    config_path = setup(tmp_path)
    sample = tmp_path / "oru.hl7"
    sample.write_bytes(ORU.replace("LOCAL1", "GLY").encode() + b"\r" + ORU.encode())
    result = CliRunner().invoke(
        app, ["transform", "--config", str(config_path), "--channel", "lab", str(sample)]
    )
    assert result.exit_code == 1  # the second message would be a dead letter
    lines = result.stdout.splitlines()
    assert lines[0] == "message 1 (MSH-10 'LAB-9'): kept"
    assert lines[1] == "  to out: 2 change(s)"
    assert "OBX[2]-3: 'GLY^Local^L' -> '2345-7^Local^LN'" in lines[3]
    assert lines[4].startswith(
        "message 2 (MSH-10 'LAB-9'): dead letter at transform: unmapped_code"
    )
    db = make_engine(f"sqlite:///{tmp_path}/journal.db")
    upgrade(db)
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 0
    db.dispose()
