"""HL7 v2 batches (FHS/BHS/BTS/FTS, or several messages in one payload) over real MLLP and
directory listeners: python-hl7's batch and file samples go in one journal row per message
with their batch id, each answered in a batch acknowledgement (read back with python-hl7);
its malformed ones are refused whole with a reason and kept as one dead letter; a batch sent
again applies nothing twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import hl7
import hl7.client
import pytest
from sqlalchemy import text

from engine.adapters.mllp_framing import frame
from engine.journal.search import MessageFilter, search
from tests.e2e.engine_process import free_port
from tests.e2e.mllp_client import read_ack
from tests.integration.identity_harness import adt, oru, pid
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine
from tests.sample_files import COPIES

SAMPLES = COPIES / "python-hl7"

CHANNELS = """
engine:
  database_url: {url}
  durability: normal
channels:
  - name: batches
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations: {{files: {{type: file, directory: {out}/mllp}}}}
  - name: inbox
    source: {{type: directory, path: {inbox}, payload: hl7v2, pattern: "*.hl7",
              poll_seconds: 0.05, settle_seconds: 0}}
    accept: ["ADT^*"]
    destinations: {{files: {{type: file, directory: {out}/inbox}}}}
  - name: refusing
    source: {{type: mllp, port: {refusing_port}, batches: refuse}}
    accept: ["ADT^*"]
    destinations: {{files: {{type: file, directory: {out}/refusing}}}}
"""

FIRST, SECOND = "12334456778890", "12334456778891"
BATCH_1 = "abchs20070101123401-1"
#: Per good sample: the MSA-2 of each ACK, batch by batch, as the answer must give them.
GOOD: dict[str, list[list[str]]] = {
    "sample_batch.hl7": [[FIRST]],
    "sample_batch1.hl7": [[FIRST, SECOND]],
    "sample_batch2.hl7": [[FIRST, SECOND]],  # two MSH, no envelope
    "sample_batch3.hl7": [[FIRST]],  # BHS without BTS
    "sample_batch4.hl7": [[FIRST]],  # BTS without BHS
    "sample_file.hl7": [[FIRST]],
    "sample_file1.hl7": [[FIRST, SECOND], [FIRST]],  # batch 2 resends batch 1's first
    "sample_file2.hl7": [[FIRST, SECOND]],
    "sample_file3.hl7": [[FIRST]],
    "sample_file4.hl7": [[FIRST]],
    "sample_file5.hl7": [[FIRST]],
    "sample_file6.hl7": [[FIRST]],
}
#: Per good sample: the batch id of each journaled message (None: generated from the payload).
BATCH_IDS: dict[str, list[str | None]] = {
    "sample_batch2.hl7": [None, None],
    "sample_batch4.hl7": [None],
    "sample_file2.hl7": [None, None],
    "sample_file6.hl7": [None],
    "sample_batch1.hl7": [BATCH_1, BATCH_1],
    "sample_file1.hl7": [BATCH_1, BATCH_1],  # the third message is the first again
}
PID_LINE = "PID|1||123^^^CHU^PI||DOE^JANE"
BAD = sorted(p.name for p in SAMPLES.glob("sample_bad_*.hl7"))


class BatchEngine(InProcessEngine):
    def __init__(self, tmp: Path, url: str | None = None) -> None:
        self.inbox = tmp / "inbox"
        self.refusing_port = free_port()
        super().__init__(
            CHANNELS,
            url=url or f"sqlite:///{tmp / 'e.db'}",
            out=tmp / "out",
            inbox=self.inbox,
            refusing_port=self.refusing_port,
        )
        self.out = tmp / "out"

    def journal(self, channel: str) -> list[tuple[object, ...]]:
        return self.rows(
            "SELECT control_id, batch_id, batch_position, state, ack_code, error_code "
            "FROM journal_messages WHERE channel = :c ORDER BY id",
            c=channel,
        )


@pytest.fixture
def on_both(store_url: str, tmp_path: Path) -> Iterator[BatchEngine]:
    """The engine on SQLite, then on PostgreSQL."""
    eng = BatchEngine(tmp_path, store_url)
    yield eng
    eng.stop()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[BatchEngine]:
    eng = BatchEngine(tmp_path)
    yield eng
    eng.stop()


def delivered(folder: Path) -> list[Path]:
    """The files a file destination wrote (one per message delivered)."""
    return [p for p in folder.rglob("*") if p.is_file()]


def structure(answer: str) -> list[tuple[str, list[str]]]:
    """The envelope segments and MSA segments of an answer, in order: (name, fields)."""
    return [
        (s[:3], s.split("|"))
        for s in answer.split("\r")
        if s[:3] in ("FHS", "BHS", "BTS", "FTS", "MSA", "MSH", "ERR")
    ]


def msa_by_batch(answer: str) -> list[list[tuple[str, str]]]:
    """(MSA-1, MSA-2) of each ACK, batch by batch, as python-hl7 reads the answer."""
    parsed = hl7.parse_file(answer)
    return [[(str(m["MSA.1"]), str(m["MSA.2"])) for m in batch] for batch in parsed]


def check_envelope(answer: str, sent: bytes) -> None:
    """FHS/FTS when the sample came with FHS; one BHS/BTS per batch; BTS-1 and FTS-1 count
    what the answer holds; every ACK is an MSH then an MSA."""
    segments = structure(answer)
    names = [n for n, _ in segments]
    has_file = sent.startswith(b"FHS")
    assert (names[0] == "FHS") is has_file and (names[-1] == "FTS") is has_file
    batches, count = 0, 0
    for i, (name, fields) in enumerate(segments):
        if name == "BHS":
            batches, count = batches + 1, 0
        elif name == "MSH":
            assert segments[i + 1][0] == "MSA"
            assert fields[8].startswith("ACK")
            count += 1
        elif name == "BTS":
            assert int(fields[1]) == count
        elif name == "FTS":
            assert int(fields[1]) == batches
    assert names.count("BHS") == names.count("BTS") == batches


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_good_batch_over_mllp_is_journaled_per_message_and_acked_per_message(
    running: BatchEngine, name: str
) -> None:
    sent = (SAMPLES / name).read_bytes()
    answer = running.exchange(sent)
    check_envelope(answer, sent)
    expected = GOOD[name]
    assert msa_by_batch(answer) == [[("AA", cid) for cid in batch] for batch in expected]
    rows = running.journal("batches")
    distinct = list(dict.fromkeys(cid for batch in expected for cid in batch))
    assert [r[0] for r in rows] == distinct  # a message resent inside the file: once
    assert all(r[4] == "AA" and r[5] is None for r in rows)
    ids = BATCH_IDS.get(name, [BATCH_1] * len(rows))
    for row, batch_id in zip(rows, ids, strict=True):
        if batch_id is None:  # generated: the same for the whole payload, never empty
            assert isinstance(row[1], str) and len(row[1]) > 8 and row[1] == rows[0][1]
        else:
            assert row[1] == batch_id
    assert [r[2] for r in rows] == list(range(1, len(rows) + 1))
    running.wait_idle()
    assert len(delivered(running.out / "mllp")) == len(distinct)


def test_python_hl7s_own_client_gets_the_batch_acknowledgement(running: BatchEngine) -> None:
    sent = (SAMPLES / "sample_batch1.hl7").read_text()
    with hl7.client.MLLPClient("127.0.0.1", running.port) as client:
        raw = client.send_message(sent)
    answer = raw.strip(b"\x0b\x1c\r").decode("ascii")
    batch = hl7.parse_batch(answer)
    assert str(batch.header[0][0]) == "BHS"
    assert str(batch.header(12)) == BATCH_1  # the batch it answers
    assert [str(m["MSA.2"]) for m in batch] == [FIRST, SECOND]
    assert str(batch.trailer(1)) == "2"


@pytest.mark.parametrize("name", BAD)
def test_a_malformed_batch_is_refused_whole_with_a_reason_and_kept_as_one_dead_letter(
    running: BatchEngine, name: str
) -> None:
    sent = (SAMPLES / name).read_bytes()
    answer = running.exchange(sent)
    check_envelope(answer, sent)
    [[(code, named)]] = msa_by_batch(answer)
    assert code == "AR"
    bts = next(f for n, f in structure(answer) if n == "BTS")
    reason = bts[2]
    assert "segment" in reason  # says where the structure breaks
    err = next(f for n, f in structure(answer) if n == "ERR")
    assert err[3].startswith("100^") and err[5] == "parse_error"
    rows = running.rows(
        "SELECT state, error_code, error_reason, raw, batch_id, control_id FROM journal_messages"
    )
    assert len(rows) == 1
    state, code_, why, raw, batch_id, control_id = rows[0]
    assert (state, code_, why) == ("dead_lettered", "parse_error", reason)
    assert raw == sent and batch_id == control_id == named


def test_a_batch_sent_again_is_answered_the_same_and_applies_nothing_twice(
    on_both: BatchEngine,
) -> None:
    running = on_both
    sent = (SAMPLES / "sample_file1.hl7").read_bytes()
    first = running.exchange(sent)
    running.wait_idle()
    again = running.exchange(sent)
    running.wait_idle()
    assert msa_by_batch(again) == msa_by_batch(first)
    assert len(running.journal("batches")) == 2
    assert len(delivered(running.out / "mllp")) == 2
    bad = (SAMPLES / "sample_bad_file1.hl7").read_bytes()
    assert msa_by_batch(running.exchange(bad)) == msa_by_batch(running.exchange(bad))
    assert len(running.rows("SELECT id FROM journal_messages WHERE state = 'dead_lettered'")) == 1


def test_a_message_the_channel_does_not_take_is_refused_alone_inside_a_good_batch(
    on_both: BatchEngine,
) -> None:
    running = on_both
    lines = [
        "BHS|^~\\&|LAB|CHU|AIG|CHU|20240306||||B42",
        "MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ADT^A28^ADT_A05|M1|P|2.5",
        "PID|1||123^^^CHU^PI||DOE^JANE",
        "MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ORU^R01|M2|P|2.5",
        "PID|1||123^^^CHU^PI||DOE^JANE",
        "MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ADT^A31^ADT_A05|M3|P|2.5",
        "PID|1||123^^^CHU^PI||DOE^JANE",
        "BTS|3",
    ]
    answer = running.exchange("\r".join(lines).encode())
    assert msa_by_batch(answer) == [[("AA", "M1"), ("AR", "M2"), ("AA", "M3")]]
    assert "does not accept ORU R01" in answer
    running.wait_idle()
    assert running.journal("batches") == [
        ("M1", "B42", 1, "delivered", "AA", None),
        ("M2", "B42", 2, "dead_lettered", "AR", "unsupported_message_type"),
        ("M3", "B42", 3, "delivered", "AA", None),
    ]
    with running.engine.db.connect() as conn:  # what the operations API lists for the batch
        found = search(conn, MessageFilter(batch_id="B42"))
    assert [(m["control_id"], m["batch_position"]) for m in found] == [
        ("M3", 3),
        ("M2", 2),
        ("M1", 1),
    ]


def test_a_source_set_to_refuse_batches_refuses_them_with_the_reason(
    running: BatchEngine,
) -> None:
    sent = (SAMPLES / "sample_batch1.hl7").read_bytes()
    answer = running.exchange(sent, running.refusing_port)
    # One ACK naming the batch, refused (CR: the sample's MSH-15 asks for enhanced mode).
    assert answer.startswith("MSH") and "MSA|CR|" + BATCH_1 in answer
    assert "HL7 batches (FHS/BHS) are not accepted" in answer
    assert running.journal("refusing")[0][3] == "dead_lettered"


def wait_for(path: Path, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(path.glob("*.hl7")) if path.is_dir() else []
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"nothing arrived in {path}")


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_good_batch_file_dropped_in_the_inbox_is_journaled_per_message(
    running: BatchEngine, name: str
) -> None:
    (running.inbox / name).write_bytes((SAMPLES / name).read_bytes())
    assert [p.name for p in wait_for(running.inbox / "processed")] == [name]
    rows = running.journal("inbox")
    expected = GOOD[name]
    distinct = list(dict.fromkeys(cid for batch in expected for cid in batch))
    assert [r[0] for r in rows] == distinct
    assert all(r[1] and r[4] == "AA" for r in rows)
    ids = BATCH_IDS.get(name, [BATCH_1] * len(rows))
    assert [r[1] for r in rows if r[1] is not None] == [r[1] for r in rows]
    for row, batch_id in zip(rows, ids, strict=True):
        assert batch_id is None or row[1] == batch_id
    assert not (running.inbox / "error").exists()


@pytest.mark.parametrize("name", BAD)
def test_a_malformed_batch_file_goes_to_error_and_is_kept_as_one_dead_letter(
    running: BatchEngine, name: str
) -> None:
    sent = (SAMPLES / name).read_bytes()
    (running.inbox / name).write_bytes(sent)
    assert [p.name for p in wait_for(running.inbox / "error")] == [name]
    rows = running.rows(
        "SELECT state, error_code, error_reason, raw FROM journal_messages WHERE channel = 'inbox'"
    )
    assert len(rows) == 1
    assert rows[0][:2] == ("dead_lettered", "parse_error")
    assert "segment" in str(rows[0][2]) and rows[0][3] == sent


PROCESSING = (
    ENGINE_HEAD
    + """  - name: processing
    source: {{type: mllp, port: {port}, answer_after: processing, answer_timeout_seconds: 20}}
    accept: ["ADT^*", "ORU^R01"]
    destinations: {{store: {{type: record_store}}}}
"""
)


def test_with_ack_after_processing_each_ack_of_the_batch_says_what_the_pipeline_did(
    tmp_path: Path,
) -> None:
    running = InProcessEngine(PROCESSING, url=f"sqlite:///{tmp_path / 'p.db'}")
    try:
        known, unknown = pid("IPP1", "279035121518989"), pid("IPP2", name="INCONNU")
        header = "BHS|^~\\&|LAB|CHU|AIG|CHU|20240306||||B7"
        messages = [adt("A28", known, "1"), oru(known, "2"), oru(unknown, "3")]
        payload = "\r".join([header, *messages, "BTS|3"])
        with running.connect() as sock:
            sock.sendall(frame(payload.encode()))
            answer = read_ack(sock).strip(b"\x0b\x1c\r").decode()
        assert msa_by_batch(answer) == [[("AA", "1"), ("AA", "2"), ("AE", "3")]]
        err = next(f for n, f in structure(answer) if n == "ERR")
        assert err[5] == "902"  # waits for its patient
    finally:
        running.stop()


SQLITE_REFUSAL = [
    "CREATE TRIGGER refuse_w3 BEFORE INSERT ON journal_messages "
    "WHEN NEW.control_id = 'W3' BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
]
POSTGRES_REFUSAL = [
    "CREATE FUNCTION refuse_w3() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF NEW.control_id = 'W3' THEN RAISE EXCEPTION 'simulated write failure'; END IF; "
    "RETURN NEW; END $$",
    "CREATE TRIGGER refuse_w3 BEFORE INSERT ON journal_messages "
    "FOR EACH ROW EXECUTE FUNCTION refuse_w3()",
]


def test_a_batch_is_journaled_whole_or_not_at_all(on_both: BatchEngine) -> None:
    running = on_both
    # The database refuses the third message of the batch, as a full disk would refuse a write.
    postgres = running.engine.db.dialect.name == "postgresql"
    with running.engine.db.begin() as conn:
        for statement in POSTGRES_REFUSAL if postgres else SQLITE_REFUSAL:
            conn.execute(text(statement))
    lines = ["BHS|^~\\&|LAB|CHU|AIG|CHU|20240306||||B5"]
    for n in range(1, 6):
        lines += [f"MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ADT^A28^ADT_A05|W{n}|P|2.5", PID_LINE]
    payload = "\r".join([*lines, "BTS|5"]).encode()
    answer = running.exchange(payload)
    assert [code for code, _ in msa_by_batch(answer)[0]] == ["AE"] * 5
    assert running.journal("batches") == []  # nothing of it was kept
    with running.engine.db.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_w3" + (" ON journal_messages" if postgres else "")))
    assert [code for code, _ in msa_by_batch(running.exchange(payload))[0]] == ["AA"] * 5
    assert [r[0] for r in running.journal("batches")] == [f"W{n}" for n in range(1, 6)]


def test_a_large_batch_prepared_off_the_loop_goes_in_whole(running: BatchEngine) -> None:
    note = "NTE|1||" + "x" * 1800
    lines = ["FHS|^~\\&|LAB|CHU|AIG|CHU|20240306", "BHS|^~\\&|LAB|CHU|AIG|CHU|20240306"]
    for n in range(1, 701):  # more than a group commit (512), over 1 MB: a worker process
        lines += [f"MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ADT^A28^ADT_A05|L{n}|P|2.5", note]
    payload = "\r".join([*lines, "BTS|700", "FTS|1"]).encode()
    assert len(payload) > 1024 * 1024
    answer = running.exchange(payload, timeout=120)  # a loaded machine: 700 rows to commit
    [acks] = msa_by_batch(answer)
    assert acks == [("AA", f"L{n}") for n in range(1, 701)]
    rows = running.journal("batches")
    assert [(r[0], r[2]) for r in rows] == [(f"L{n}", n) for n in range(1, 701)]
    assert {r[1] for r in rows} == {rows[0][1]} and str(rows[0][1]).startswith("B")
