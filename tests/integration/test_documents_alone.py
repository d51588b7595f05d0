"""CDA documents received alone, not carried by HL7 v2: POSTed over HTTP, dropped in a watched
directory, or framed over MLLP, into the record store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import hl7.client
import pytest

from tests.e2e.engine_process import free_port
from tests.integration.identity_harness import adt, pid
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine
from tests.sample_files import CDA_SAMPLES

INS = "279035121518989"
TSH = CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
TSH_ID = "1.2.250.1.213.1.1.1.55.2024.9.1"
PATIENT = pid("IPP1", INS)
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol2;</title></ClinicalDocument>"""

CHANNELS = (
    ENGINE_HEAD
    + """  - name: adt
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: documents_http
    source: {{type: http, port: {http_port}, max_message_bytes: 1048576, auth: none}}
    accept: ["CDA^11502-2"]
    destinations: {{store: {{type: record_store}}}}
  - name: documents_inbox
    source: {{type: directory, path: "{inbox}", poll_seconds: 0.05, settle_seconds: 0}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: documents_checked
    source: {{type: http, port: {checked_port}, answer_after: processing, auth: none}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store, documents: {{xsd: cisis}}}}}}
  - name: documents_mllp
    source: {{type: mllp, port: {cda_port}, payload: cda}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
"""
)


class DocumentsEngine(InProcessEngine):
    def __init__(self, url: str, inbox: Path) -> None:
        self.http_port, self.cda_port, self.inbox = free_port(), free_port(), inbox
        self.checked_port = free_port()
        super().__init__(
            CHANNELS,
            url=url,
            http_port=self.http_port,
            cda_port=self.cda_port,
            checked_port=self.checked_port,
            inbox=inbox,
        )

    def admit(self) -> None:
        with hl7.client.MLLPClient("127.0.0.1", self.port) as client:
            client.send_message(adt("A28", PATIENT, "1"))
        self.wait_idle()

    def post(self, body: bytes, port: int = 0) -> tuple[int, dict[str, object]]:
        url = f"http://127.0.0.1:{port or self.http_port}/documents"
        request = urllib.request.Request(url, body, {"Content-Type": "application/xml"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:  # closed now, not by the collector (a ResourceWarning, an error here)
                return exc.code, json.loads(exc.read())

    def documents(self) -> list[tuple[object, ...]]:
        return self.rows(
            "SELECT d.document_id, d.version, d.status, p.ins FROM store_documents d "
            "JOIN store_patients p ON p.id = d.patient_id ORDER BY d.id"
        )

    def journal(self, channel: str) -> list[tuple[object, ...]]:
        return self.rows(
            "SELECT message_type, trigger, control_id, state, error_code FROM journal_messages "
            "WHERE channel = :c ORDER BY id",
            c=channel,
        )


@pytest.fixture
def engine(store_url: str, tmp_path: Path) -> Iterator[DocumentsEngine]:
    running = DocumentsEngine(store_url, tmp_path / "inbox")
    yield running
    running.stop()


def test_a_document_posted_over_http_is_stored_once_and_a_resend_says_duplicate(
    engine: DocumentsEngine,
) -> None:
    engine.admit()
    status, body = engine.post(TSH.read_bytes())
    assert (status, body["status"], body["control_id"]) == (202, "accepted", TSH_ID)
    engine.wait_idle()
    assert engine.documents() == [(TSH_ID, 1, "current", INS)]
    again, answer = engine.post(TSH.read_bytes())
    assert (again, answer["status"], answer["message_id"]) == (200, "duplicate", body["message_id"])
    assert engine.journal("documents_http") == [("CDA", "11502-2", TSH_ID, "delivered", None)]


def test_http_refuses_unsafe_xml_other_types_and_oversized_bodies_with_the_reason(
    engine: DocumentsEngine,
) -> None:
    status, body = engine.post(BOMB)
    assert (status, body["code"]) == (422, "invalid_document")
    assert "DOCTYPE is not allowed" in str(body["reason"])
    status, body = engine.post(b"<feed xmlns='http://www.w3.org/2005/Atom'/>")
    assert (status, body["code"]) == (422, "invalid_document")
    assert "not a CDA ClinicalDocument" in str(body["reason"])
    summary = TSH.read_bytes().replace(b'code="11502-2"', b'code="60591-5"', 1)
    summary = summary.replace(TSH_ID.encode(), b"9.9.1")  # a document id is never reused
    status, body = engine.post(summary)
    assert (status, body["code"]) == (422, "unsupported_message_type")
    status, body = engine.post(b"<x>" + b" " * 1_100_000 + b"</x>")
    assert (status, body["code"]) == (413, "message_too_large")
    # Every refusal is kept as a dead letter, and the channel goes on.
    assert [r[3:] for r in engine.journal("documents_http")] == [
        ("dead_lettered", "invalid_document"),
        ("dead_lettered", "invalid_document"),
        ("dead_lettered", "unsupported_message_type"),
        ("dead_lettered", "message_too_large"),
    ]
    engine.admit()
    assert engine.post(TSH.read_bytes())[0] == 202


def drop(inbox: Path, name: str, data: bytes) -> None:
    """Write under a hidden name, then rename: the source never reads a half-written file."""
    hidden = inbox / f".{name}"
    hidden.write_bytes(data)
    hidden.rename(inbox / name)


def wait_for(path: Path) -> None:
    for _ in range(500):
        if path.exists():
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def test_files_dropped_in_the_inbox_are_stored_then_moved_and_bad_ones_set_aside(
    engine: DocumentsEngine,
) -> None:
    drop(engine.inbox, "bomb.xml", BOMB)
    drop(engine.inbox, "tsh.xml", TSH.read_bytes())
    wait_for(engine.inbox / "processed" / "tsh.xml")
    wait_for(engine.inbox / "error" / "bomb.xml")
    engine.wait_idle()
    # No admission yet: the document waits for its patient (902), then is filed.
    assert [r[3:] for r in engine.journal("documents_inbox")] == [
        ("dead_lettered", "invalid_document"),
        ("held", "902"),
    ]
    engine.admit()
    assert engine.documents() == [(TSH_ID, 1, "current", INS)]
    # The same file dropped again is recognised: no second message, no second document.
    drop(engine.inbox, "tsh.xml", TSH.read_bytes())
    for _ in range(500):
        if len(list((engine.inbox / "processed").iterdir())) == 2:
            break
        time.sleep(0.02)
    assert len(list((engine.inbox / "processed").iterdir())) == 2
    assert sorted(p.name for p in engine.inbox.iterdir()) == ["error", "processed"]
    assert len(engine.journal("documents_inbox")) == 2
    assert engine.documents() == [(TSH_ID, 1, "current", INS)]


def replacement(original: bytes) -> bytes:
    """Version 2 of the TSH report: a new id, and relatedDocument RPLC naming version 1."""
    related = (
        b'<relatedDocument typeCode="RPLC"><parentDocument>'
        b'<id root="1.2.250.1.213.1.1.1.55.2024.9.1"/></parentDocument></relatedDocument>'
        b"<component>"
    )
    text = original.replace(b'<id root="1.2.250.1.213.1.1.1.55.2024.9.1"/>', b'<id root="9.9.2"/>')
    text = text.replace(b'<versionNumber value="1"/>', b'<versionNumber value="2"/>')
    return text.replace(b"<component>", related, 1)


def test_a_document_over_mllp_is_acked_with_its_id_and_its_replacement_supersedes_it(
    engine: DocumentsEngine,
) -> None:
    engine.admit()
    with hl7.client.MLLPClient("127.0.0.1", engine.cda_port) as client:
        acks = [client.send_message(d).decode() for d in (TSH.read_bytes(), BOMB)]
        acks.append(client.send_message(replacement(TSH.read_bytes())).decode())
    msa = [
        next(s for s in a.strip("\x0b\x1c\r").split("\r") if s[:3] == "MSA").split("|")
        for a in acks
    ]
    assert [m[1:3] for m in msa] == [["AA", TSH_ID], ["AR", ""], ["AA", "9.9.2"]]
    engine.wait_idle()
    assert engine.documents() == [(TSH_ID, 1, "superseded", INS), ("9.9.2", 2, "current", INS)]


def test_respond_after_processing_says_what_the_pipeline_made_of_the_document(
    engine: DocumentsEngine,
) -> None:
    off_schema = TSH.read_bytes().replace(b"</title>", b"</title><unexpected/>", 1)
    status, body = engine.post(
        off_schema.replace(TSH_ID.encode(), b"1.2.250.99.3"), engine.checked_port
    )
    assert (status, body["status"], body["code"]) == (422, "dead_lettered", "invalid_document")
    assert "line 45" in str(body["reason"])  # the line and the rule, from the XSD
    status, body = engine.post(TSH.read_bytes(), engine.checked_port)
    assert (status, body["status"], body["code"]) == (202, "held", "902")  # nobody admitted
    engine.admit()
    second = TSH.read_bytes().replace(TSH_ID.encode(), b"1.2.250.99.4")
    status, body = engine.post(second, engine.checked_port)
    assert (status, body["status"]) == (200, "delivered")
    assert ("1.2.250.99.4", 1, "current", INS) in engine.documents()


def test_a_document_broken_past_its_header_is_accepted_then_refused_by_the_pipeline(
    engine: DocumentsEngine,
) -> None:
    """Intake reads the prolog and header only (issue 11): the broken body is the parse
    stage's to refuse, which a sender answered after processing hears about."""
    broken = TSH.read_bytes().replace(b"</section>", b"</sectio>", 1)
    status, body = engine.post(
        broken.replace(TSH_ID.encode(), b"1.2.250.99.5"), engine.checked_port
    )
    assert (status, body["status"], body["code"]) == (422, "dead_lettered", "invalid_document")
    assert body["reason"] == "the document is not well-formed XML (line 675)"
    [(stage,)] = engine.rows(
        "SELECT error_stage FROM journal_messages WHERE control_id = '1.2.250.99.5'"
    )
    assert stage == "parse"


def test_a_document_in_utf_16_is_stored_like_any_other(engine: DocumentsEngine) -> None:
    engine.admit()
    text = TSH.read_bytes().decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
    assert 'encoding="UTF-16"' in text
    status, _ = engine.post(text.encode("utf-16"))  # with its byte order mark
    assert status == 202
    engine.wait_idle()
    assert engine.documents() == [(TSH_ID, 1, "current", INS)]
