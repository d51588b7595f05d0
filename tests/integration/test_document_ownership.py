"""Document ownership end to end over MLLP (real sockets, the engine in this process, SQLite):
only the sender identity that filed a document, or one of its ownership group, may replace or
delete it. A forgery is answered AR (``answer_after: processing``), kept as a dead letter
``not_document_owner``, and changes nothing."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.adapters.mllp_framing import frame
from engine.cli.main import app
from engine.journal import lookups as queries
from tests.e2e.engine_process import free_port
from tests.integration.identity_harness import adt, msh, pid
from tests.integration.inprocess import InProcessEngine
from tests.integration.test_documents import mdm
from tests.integration.test_documents_alone import replacement
from tests.sample_files import CDA_SAMPLES

INS = "279035121518989"
TSH = CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
TSH_ID = "1.2.250.1.213.1.1.1.55.2024.9.1"
PATIENT = pid("IPP1", INS)
#: The hospital's declared identity on the ``hospital`` channel (MSH-3^MSH-4 of ``msh``).
HOSPITAL = "hospital:GAM^CHU-X"

CHANNELS = """
engine:
  database_url: {url}
  durability: normal
  identity: {{accept_test_ins: true}}
  document_owner_groups: {{lab: [documents, partner]}}
channels:
  - name: hospital
    source: {{type: mllp, port: {port}, answer_after: processing}}
    accept: ["ADT^*", "MDM^*", "ORU^R01"]
    destinations: {{store: {{type: record_store}}}}
  - name: documents
    source: {{type: mllp, port: {documents_port}, payload: cda, answer_after: processing}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: partner
    source: {{type: mllp, port: {partner_port}, payload: cda, answer_after: processing}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: intruder
    source: {{type: mllp, port: {intruder_port}, payload: cda, answer_after: processing}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
"""


class OwnershipEngine(InProcessEngine):
    def __init__(self, url: str) -> None:
        self.ports = {n: free_port() for n in ("documents", "partner", "intruder")}
        super().__init__(CHANNELS, url=url, **{f"{n}_port": p for n, p in self.ports.items()})

    def answer(self, payload: bytes | str, channel: str = "hospital") -> tuple[str, str]:
        """MSA-1 and the ERR segment's text of the ACK to one frame sent on ``channel``."""
        data = payload.encode() if isinstance(payload, str) else payload
        port = self.port if channel == "hospital" else self.ports[channel]
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(frame(data))
            ack = b""
            while b"\x1c" not in ack:
                chunk = sock.recv(65536)
                assert chunk, "the engine closed the connection"
                ack += chunk
        segments = ack.strip(b"\x0b\x1c\r").decode().split("\r")
        msa = next(s for s in segments if s.startswith("MSA")).split("|")
        err = "\r".join(s for s in segments if s.startswith("ERR"))
        return msa[1], err

    def documents(self) -> list[tuple[object, ...]]:
        return self.rows(
            "SELECT document_id, status, filed_by FROM store_documents ORDER BY document_id"
        )

    def last(self) -> tuple[object, ...]:
        """The newest journal row: state, error code, reason, sender."""
        [row] = self.rows(
            "SELECT state, error_code, error_reason, sender FROM journal_messages "
            "WHERE id = (SELECT max(id) FROM journal_messages)"
        )
        return row


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[OwnershipEngine]:
    running = OwnershipEngine(f"sqlite:///{tmp_path / 'engine.db'}")
    assert running.answer(adt("A28", PATIENT, "1"))[0] == "AA"
    yield running
    running.stop()


def forged(original: bytes) -> bytes:
    """The issue's forgery: a copy of the genuine report with a new id and relatedDocument
    RPLC naming the genuine document's id."""
    return replacement(original).replace(b'<id root="9.9.2"/>', b'<id root="6.6.6"/>')


def from_elsewhere(message: str) -> str:
    """The same message declaring another sending application and facility (MSH-3^MSH-4)."""
    return message.replace("|GAM|CHU-X|", "|EVIL|ELSEWHERE|", 1)


def oru_document(cda: bytes, control_id: str, status: str) -> str:
    """An ORU^R01 carrying ``cda`` in an ED OBX whose OBX-11 says what to do with it."""
    data = base64.b64encode(cda).decode()
    return "\r".join(
        [
            msh("ORU^R01^ORU_R01", control_id),
            PATIENT,
            "OBR|1|||11502-2^CR d'examens biologiques^LN",
            f"OBX|1|ED|11502-2^CR d'examens biologiques^LN||^text^XML^Base64^{data}||||||{status}",
        ]
    )


def test_the_journal_row_and_the_stored_version_record_the_sender_identity(
    engine: OwnershipEngine,
) -> None:
    assert engine.answer(mdm("T02", TSH.read_bytes(), "2"))[0] == "AA"
    alone = TSH.read_bytes().replace(TSH_ID.encode(), b"1.2.250.99.7")
    assert engine.answer(alone, "documents")[0] == "AA"
    assert engine.rows("SELECT channel, sender FROM journal_messages ORDER BY id") == [
        ("hospital", HOSPITAL),
        ("hospital", HOSPITAL),
        ("documents", "documents"),
    ]
    assert engine.documents() == [
        ("1.2.250.1.213.1.1.1.55.2024.9.1", "current", HOSPITAL),
        ("1.2.250.99.7", "current", "documents"),
    ]


def test_the_issues_forged_replacement_is_a_dead_letter_and_the_genuine_stays_current(
    engine: OwnershipEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert engine.answer(TSH.read_bytes(), "documents")[0] == "AA"
    code, err = engine.answer(forged(TSH.read_bytes()), "intruder")
    assert code == "AR"
    assert "not_document_owner" in err and TSH_ID in err
    state, error_code, reason, sender = engine.last()
    assert (state, error_code, sender) == ("dead_lettered", "not_document_owner", "intruder")
    assert "'intruder' may not replace document " + TSH_ID in str(reason)
    assert engine.documents() == [(TSH_ID, "current", "documents")]  # the forgery: not written
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", str(engine.engine.db.url))
    shown = CliRunner().invoke(app, ["patient", "show", INS, "--json"])
    assert shown.exit_code == 0, shown.output
    assert '"status": "current"' in shown.output and "superseded" not in shown.output


def test_a_replayed_forgery_keeps_its_sender_and_is_refused_again(
    engine: OwnershipEngine,
) -> None:
    engine.answer(TSH.read_bytes(), "documents")
    engine.answer(forged(TSH.read_bytes()), "intruder")
    [(forgery,)] = engine.rows("SELECT id FROM journal_messages WHERE channel = 'intruder'")
    with engine.engine.db.connect() as conn:
        assert queries.replay(conn, [int(str(forgery))], "ops") == [forgery]
    engine.wait_idle()
    assert engine.last()[:2] == ("dead_lettered", "not_document_owner")
    assert engine.last()[3] == "intruder"
    assert engine.documents() == [(TSH_ID, "current", "documents")]


def test_a_forged_deletion_from_another_msh3_msh4_is_answered_ar_and_deletes_nothing(
    engine: OwnershipEngine,
) -> None:
    assert engine.answer(mdm("T02", TSH.read_bytes(), "2"))[0] == "AA"
    code, err = engine.answer(from_elsewhere(mdm("T04", TSH.read_bytes(), "3", txa12=TSH_ID)))
    assert (code, "not_document_owner" in err) == ("AR", True)
    assert engine.last()[:2] == ("dead_lettered", "not_document_owner")
    assert engine.last()[3] == "hospital:EVIL^ELSEWHERE"
    assert engine.documents() == [(TSH_ID, "current", HOSPITAL)]


@pytest.mark.parametrize("status", ["C", "D"])
def test_a_forged_oru_correction_or_deletion_is_refused(
    engine: OwnershipEngine, status: str
) -> None:
    assert engine.answer(oru_document(TSH.read_bytes(), "2", "F"))[0] == "AA"
    cda = replacement(TSH.read_bytes()) if status == "C" else TSH.read_bytes()
    code, _ = engine.answer(from_elsewhere(oru_document(cda, "3", status)))
    assert code == "AR"
    assert engine.last()[:2] == ("dead_lettered", "not_document_owner")
    assert engine.documents() == [(TSH_ID, "current", HOSPITAL)]


def test_the_owner_may_replace_and_then_delete_its_document(engine: OwnershipEngine) -> None:
    original, second = TSH.read_bytes(), replacement(TSH.read_bytes())
    assert engine.answer(mdm("T02", original, "2"))[0] == "AA"
    assert engine.answer(mdm("T02", original, "3"))[0] == "AA"  # a resend: applied once
    assert engine.answer(mdm("T10", second, "4"))[0] == "AA"
    assert engine.documents() == [(TSH_ID, "superseded", HOSPITAL), ("9.9.2", "current", HOSPITAL)]
    assert engine.answer(mdm("T04", second, "5", txa12="9.9.2"))[0] == "AA"
    assert engine.documents() == [(TSH_ID, "superseded", HOSPITAL), ("9.9.2", "deleted", HOSPITAL)]


def test_a_member_of_the_owners_group_may_replace_its_document(engine: OwnershipEngine) -> None:
    assert engine.answer(TSH.read_bytes(), "documents")[0] == "AA"
    assert engine.answer(replacement(TSH.read_bytes()), "partner")[0] == "AA"
    assert engine.documents() == [
        (TSH_ID, "superseded", "documents"),
        ("9.9.2", "current", "partner"),
    ]
