"""The shared record's CLI and right of access, end to end (SQLite and PostgreSQL): tokens
shown once and stored as hashes, ``patient show`` through the access layer, ``record verify``,
the export ZIP and rectification requests."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from tests.integration.record_harness import (
    HOSPITAL_DOCTOR,
    IMG_ID,
    INS,
    OUTSIDER,
    TSH,
    TSH_ID,
    VAC_ID,
    VSM_ID,
    RecordWorld,
    mdm,
)


@pytest.fixture
def world(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordWorld]:
    running = RecordWorld(store_url, monkeypatch)
    yield running
    running.stop()


def test_tokens_are_printed_once_and_stored_only_as_hashes(world: RecordWorld) -> None:
    """DESIGN.md §3.9 (professionals and patients authenticate): the token works, the database
    holds only its SHA-256; re-adding the professional replaces it, revoking stops it."""
    world.admitted_with_documents()
    token = world.as_(HOSPITAL_DOCTOR)
    hashes = [r[0] for r in world.engine.rows("SELECT token_hash FROM record_professionals")]
    assert hashlib.sha256(token.encode()).hexdigest() in hashes
    assert token not in hashes
    assert "médecin" in world.cli("professionals", "list")
    new = world.professional(HOSPITAL_DOCTOR)
    assert world.get(token).status_code == 401
    assert world.get(new).status_code == 200
    world.cli("professionals", "revoke", HOSPITAL_DOCTOR)
    assert world.get(new).status_code == 401


def test_patient_show_reads_through_the_access_layer_and_leaves_a_log_line(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 130 (every read is logged) and DESIGN.md §3.9 (operators go through the
    same layer): the patient sees the operator's read in their access log."""
    patient = world.admitted_with_documents()
    shown = json.loads(world.cli("patient", "show", INS, "--json"))
    assert {d["document_id"] for d in shown["documents"]} >= {TSH_ID, VSM_ID}
    [line] = [e for e in world.get(patient, "access-log").json() if e["role"] == "operator"]
    assert (line["action"], line["actor"].startswith("operator:")) == ("read_record", True)


def test_record_verify_recomputes_the_hashes_and_reports_a_mismatch(world: RecordWorld) -> None:
    """DOMAIN.md line 113 (every document's integrity is checkable)."""
    world.admitted_with_documents()
    assert "4 document(s) checked, 0 mismatch(es)" in world.cli("record", "verify", INS)
    with world.engine.engine.db.begin() as conn:
        conn.execute(
            text("UPDATE store_documents SET content = :c WHERE document_id = :d"),
            {"c": TSH.read_bytes() + b" ", "d": TSH_ID},
        )
    world.monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", world.url)
    from typer.testing import CliRunner

    from engine.cli.main import app

    result = CliRunner().invoke(app, ["record", "verify", "--config", "absent.yaml"])
    assert result.exit_code == 1
    assert "MISMATCH store_documents" in result.stdout and TSH_ID in result.stdout
    assert "1 mismatch(es)" in result.stdout


def test_the_export_gives_the_record_as_json_with_its_cda_documents_in_a_zip(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 106-110 (content) and 130: the right of access, logged as an export;
    a professional may not export."""
    patient = world.admitted_with_documents()
    answer = world.get(patient, "export")
    assert answer.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    record = json.loads(archive.read("record.json"))
    assert {d["id"] for d in record["documents"]} == {TSH_ID, VSM_ID, IMG_ID, VAC_ID}
    tsh = next(d for d in record["documents"] if d["id"] == TSH_ID)
    assert archive.read(tsh["file"]) == TSH.read_bytes()
    assert hashlib.sha256(archive.read(tsh["file"])).hexdigest() == tsh["sha256"]
    assert any(e["action"] == "export" for e in world.get(patient, "access-log").json())
    assert world.get(world.as_(OUTSIDER), "export").status_code == 403


def test_a_rectification_request_is_recorded_and_shown_to_operators(world: RecordWorld) -> None:
    """The right of rectification: the patient's request is kept and listed by the CLI."""
    patient = world.admitted_with_documents()
    answer = world.post(patient, "rectifications", {"text": "Allergie à la pénicilline erronée"})
    assert answer.status_code == 201
    listed = json.loads(world.cli("record", "rectifications", "--json"))
    assert [(r["status"], r["requested_by"]) for r in listed] == [("open", "patient")]
    # The patient's words were shown to an operator: in the audit trail and the access log.
    trail = json.loads(world.cli("audit", "--json"))
    viewed = [e for e in trail if e["action"] == "view_rectifications"]
    assert [(e["target"], e["ids"]) for e in viewed] == [("patient", [listed[0]["patient_id"]])]
    reads = [
        e for e in world.get(patient, "access-log").json() if e["action"] == "read_rectifications"
    ]
    assert len(reads) == 1
    assert world.post(world.as_(HOSPITAL_DOCTOR), "rectifications", {"text": "x"}).json() == {
        "reason": "not_authorised"
    }


def test_retention_purges_records_closed_more_than_ten_years_ago(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 131 (retention: 10 years after closure or death, L1111-18): a record
    closed yesterday stays; one closed eleven years ago is due (--dry-run counts its rows),
    then purged with its documents, results and access log."""
    patient = world.admitted_with_documents()
    assert world.post(patient, "close").status_code == 204
    due = json.loads(world.cli("record", "retention", "--dry-run", "--json"))
    assert due["records"] == 0
    with world.engine.engine.db.begin() as conn:
        conn.execute(text("UPDATE record_statuses SET closed_at = :at"), {"at": "2015-01-01"})
    due = json.loads(world.cli("record", "retention", "--dry-run", "--json"))
    assert due["records"] == 1
    assert due["rows"]["store_documents"] == 4
    assert due["rows"]["record_access_log"] > 0
    out = world.cli("record", "retention", "--json")  # the purge's log line comes first
    assert "retention_purged" in out and INS not in out  # counts, no patient data
    gone = json.loads(out[out.index("\n{") :])
    assert (gone["records"], gone["dry_run"]) == (1, False)
    left = world.engine.rows(
        "SELECT (SELECT count(*) FROM store_documents), (SELECT count(*) FROM "
        "store_observations), (SELECT count(*) FROM record_access_log)"
    )
    assert left == [(0, 0, 0)]
    assert json.loads(world.cli("record", "retention", "--dry-run", "--json"))["records"] == 0
    world.engine.send(mdm(TSH, "40"))  # the purged record still refuses documents
    assert world.engine.rows("SELECT error_code FROM journal_messages WHERE control_id = '40'") == [
        ("record_closed",)
    ]
