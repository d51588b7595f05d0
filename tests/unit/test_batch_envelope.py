"""Reading HL7 v2 batches whole (envelope rules, counts, character sets) and writing their
acknowledgement, without sockets."""

from __future__ import annotations

import asyncio

import hl7
import pytest

from engine.errors import ParseError
from engine.hl7v2.batch import holds_several, read_envelope
from engine.intake.batches import batch_answer, prepare_batch
from engine.intake.committer import GroupCommitter
from engine.intake.rules import MessageRules
from engine.journal.records import Appended, NewMessage

MSH = "MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ADT^A28^ADT_A05|{cid}|P|2.5"
PID = "PID|1||123^^^CHU^PI||DOE^JANE"


def batch(*segments: str) -> str:
    return "\r".join(segments)


def msg(cid: str) -> tuple[str, str]:
    return MSH.format(cid=cid), PID


@pytest.mark.parametrize(
    ("segments", "reason"),
    [
        (
            ("BHS|^~\\&", *msg("1"), "BTS|2"),
            "BTS-1 of batch 1 counts 2 messages",
        ),
        (("BHS|^~\\&", *msg("1"), "BTS|x"), "BTS-1 is not a count"),
        (("FHS|^~\\&", "BHS|^~\\&", *msg("1"), "BTS|1", "FTS|2"), "FTS-1 counts 2 batches"),
        (("BHS|^~\\&", *msg("1"), "BTS|1", "BTS|0"), "segment 5 closes a batch (BTS)"),
        (("BHS|^~\\&", *msg("1"), "FTS|1", *msg("2")), "segment 5 ('MSH') follows the file"),
        (("BHS|^~\\&", *msg("1"), "FHS|^~\\&"), "segment 4 is an FHS"),
        (("BHS|^~\\&", *msg("1"), "BHS|^~\\&", *msg("2")), "segment 4 opens a batch (BHS)"),
        (("BHS|^~\\&", PID, *msg("1")), "batch segment 2 ('PID') is outside any message"),
    ],
)
def test_a_malformed_envelope_is_refused_with_where_it_breaks(
    segments: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(ParseError) as caught:
        read_envelope(batch(*segments))
    assert reason in caught.value.reason


def test_trailers_may_be_left_out_and_a_batch_may_be_empty() -> None:
    fhs, bhs = "FHS|^~\\&" + "|" * 9 + "F1", "BHS|^~\\&" + "|" * 9 + "B1"  # FHS-11, BHS-11
    envelope = read_envelope(batch(fhs, bhs, *msg("1")))
    assert envelope.file_control_id == "F1"
    assert [(b.control_id, len(b.messages)) for b in envelope.batches] == [("B1", 1)]
    empty = read_envelope(batch("BHS|^~\\&" + "|" * 9 + "B2", "BTS|0"))
    assert empty.message_count == 0 and empty.batches[0].count == "0"


def test_messages_outside_any_bhs_form_one_batch_closed_by_bts_or_the_end() -> None:
    envelope = read_envelope(batch(*msg("1"), *msg("2"), "BTS|2", "BHS|^~\\&", *msg("3")))
    assert [len(b.messages) for b in envelope.batches] == [2, 1]
    assert envelope.batches[0].messages[1] == batch(*msg("2"))


def test_several_messages_or_a_trailer_make_a_payload_a_batch_and_data_does_not() -> None:
    single = batch(*msg("1"), "OBX|1|TX|||see MSH and BTS in the text")
    assert not holds_several(single)
    assert not holds_several("\r\n" + single)  # blanks before the only MSH
    assert holds_several(batch(*msg("1"), *msg("2")))
    assert holds_several(batch(*msg("1"), *msg("2")).replace("\r", "\n"))
    assert holds_several(batch(*msg("1"), "BTS|1"))
    assert holds_several(batch(*msg("1"), "FTS|1") + "\r\n")


def test_messages_declaring_another_character_set_than_the_first_refuse_the_batch() -> None:
    first, pid = msg("1")
    other = MSH.format(cid="2") + "||||||8859/1"
    intake = MessageRules("c", ("ADT^*",), "UNICODE UTF-8", batches=prepare_batch)
    prepared = intake.prepare(batch("BHS|^~\\&", first, pid, other, pid).encode())
    assert prepared.error is not None
    assert "message 2 of its batch (segment 4)" in prepared.error.reason
    assert prepared.row.state == "dead_lettered" and prepared.batch is not None


def test_the_batch_ack_is_a_file_python_hl7_reads_with_one_ack_per_message() -> None:
    intake = MessageRules("c", ("ADT^*",), "UNICODE UTF-8", batches=prepare_batch)
    payload = batch(
        "FHS|^~\\&|LAB|CHU|AIG|CHU|20240306||||F9",
        "BHS|^~\\&|LAB|CHU|AIG|CHU|20240306||||B9",
        *msg("1"),
        "MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ORU^R01|2|P|2.5",
        PID,
        "BTS|2",
        "FTS|1",
    )
    prepared = intake.prepare(payload.encode())
    assert prepared.error is None and prepared.batch is not None
    rows: list[NewMessage] = prepared.batch.rows
    assert [(r.batch_id, r.batch_position, r.ack_code) for r in rows] == [
        ("B9", 1, "AA"),
        ("B9", 2, "AR"),
    ]
    results = [Appended(7, False, "AA"), Appended(8, False, "AR", "x", "not taken")]
    answer = batch_answer(prepared, results)
    assert answer is not None
    parsed = hl7.parse_file(answer.decode())
    assert str(parsed.header(12)) == "F9" and str(parsed.trailer(1)) == "1"
    [answered] = parsed
    assert str(answered.header(12)) == "B9" and str(answered.trailer(1)) == "2"
    assert str(answered.header(3)) == "AIG" and str(answered.header(5)) == "LAB"
    assert [(str(m["MSA.1"]), str(m["MSA.2"])) for m in answered] == [("AA", "1"), ("AR", "2")]
    assert str(answered[1]["ERR.8"]) == "not taken"


def test_a_batch_of_acknowledgments_gets_no_answer() -> None:
    ack = "MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ACK^A01^ACK|{cid}|P|2.5\rMSA|AA|{cid}"
    intake = MessageRules("c", ("ACK^*",), "UNICODE UTF-8", batches=prepare_batch)
    prepared = intake.prepare(batch("BHS|^~\\&", ack.format(cid=1), ack.format(cid=2)).encode())
    assert prepared.batch is not None and len(prepared.batch.messages) == 2
    assert batch_answer(prepared, [Appended(1, False, "AA"), Appended(2, False, "AA")]) is None


def test_a_source_refusing_batches_refuses_them_as_before() -> None:
    intake = MessageRules("c", ("ADT^*",), "UNICODE UTF-8")
    prepared = intake.prepare(batch("BHS|^~\\&", *msg("1"), "BTS|1").encode())
    assert prepared.batch is None and prepared.error is not None
    assert "batches (FHS/BHS) are not accepted" in prepared.error.reason
    several = intake.prepare(batch(*msg("1"), *msg("2")).encode())
    assert several.batch is None  # as before: read as one message


class _Writer:
    engine = None  # the outcome watcher's database: not used here

    def __init__(self) -> None:
        self.jobs: list[int] = []

    def submit(self, rows: list[NewMessage], done: object, deadline: float) -> None:
        self.jobs.append(len(rows))


def test_the_rows_of_a_batch_go_to_the_writer_as_one_job_past_the_group_size() -> None:
    writer = _Writer()

    async def run() -> None:
        committer = GroupCommitter(writer, max_batch=4)  # type: ignore[arg-type]
        committer.submit(NewMessage("c", b"x"))
        committer.submit_all([NewMessage("c", b"m") for _ in range(9)])
        committer.submit(NewMessage("c", b"y"))
        await asyncio.sleep(0)

    asyncio.run(run())
    assert writer.jobs == [10, 1]  # the batch is not cut at max_batch
