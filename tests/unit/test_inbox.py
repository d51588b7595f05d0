"""One inbox for every source: ``Inbox.submit(payload, peer) -> Answer`` journals and answers
HL7 v2 messages, batches and CDA documents the same way, without sockets.

The journal is real (SQLite, so resends are recognised as the journal recognises them); the
group committer is an in-memory twin that commits each row at once, and the pipeline's
outcome is whatever a test says it is."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hl7
import pytest
import structlog
from sqlalchemy import Engine, select

from engine.db import make_engine, metadata
from engine.errors import MessageTooLarge, NotDocumentOwner, PoisonMessage, StoreUnavailable
from engine.intake.batches import prepare_batch
from engine.intake.inbox import Answer, Inbox
from engine.intake.offload import INLINE_MAX
from engine.intake.outcomes import EndState
from engine.intake.prepared import Prepared
from engine.intake.rules import DocumentRules, MessageRules
from engine.journal.journal import Journal
from engine.journal.message_tables import State, messages
from engine.journal.records import Appended, NewMessage
from tests.sample_files import CDA_SAMPLES

ADT = "MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ADT^A28^ADT_A05|{cid}|P|2.5\rPID|1||123^^^CHU^PI"


def adt(cid: str) -> bytes:
    return ADT.format(cid=cid).encode()


class CommitterTwin:
    """The group committer's interface (submit, submit_all, outcome) over a real journal,
    committing at once; ``down`` makes it answer as a journal that cannot store."""

    def __init__(self, db: Engine) -> None:
        self.journal = Journal(db)
        self.db = db
        self.down = False
        self.ends: dict[int, EndState] = {}
        self.waited: list[tuple[int, float]] = []

    def submit(self, row: NewMessage) -> asyncio.Future[Appended | StoreUnavailable]:
        return self.submit_all([row])[0]

    def submit_all(self, rows: list[NewMessage]) -> list[asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in rows]
        if self.down:
            results: list[Any] = [StoreUnavailable("the journal is down") for _ in rows]
        else:
            with self.db.begin() as conn:
                results = list(self.journal.append(conn, rows))
        for fut, result in zip(futures, results, strict=True):
            fut.set_result(result)
        return futures

    async def outcome(self, message_id: int, timeout: float) -> EndState | None:
        self.waited.append((message_id, timeout))
        return self.ends.get(message_id)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    import engine.journal.message_tables  # noqa: F401  (register the journal's tables)

    db = make_engine(f"sqlite:///{tmp_path / 'journal.db'}")
    tables = [t for name, t in metadata.tables.items() if name.startswith("journal_")]
    with db.begin() as conn:
        metadata.create_all(conn, tables=tables)
    yield db
    db.dispose()


@pytest.fixture
def twin(db: Engine) -> CommitterTwin:
    return CommitterTwin(db)


def mllp_inbox(twin: CommitterTwin, **options: Any) -> Inbox:
    rules = MessageRules("adt", ("ADT^*",), "UNICODE UTF-8", batches=prepare_batch)
    return Inbox(rules, twin, hl7_answers=True, **options)  # type: ignore[arg-type]


def submit(inbox: Inbox, payload: bytes, **kwargs: Any) -> Answer:
    return asyncio.run(inbox.submit(payload, "127.0.0.1:5000", **kwargs))


def msa(answer: Answer) -> list[str]:
    assert answer.ack is not None
    parsed = hl7.parse(answer.ack.decode())
    return [str(f) for f in parsed.segment("MSA")[1:4]]


def states(db: Engine) -> list[tuple[str | None, str]]:
    with db.connect() as conn:
        query = select(messages.c.control_id, messages.c.state).order_by(messages.c.id)
        return [(r[0], r[1]) for r in conn.execute(query)]


# -- HL7 v2 messages (MLLP) ------------------------------------------------------------------


def test_an_accepted_message_is_journaled_before_its_aa_answer(
    twin: CommitterTwin, db: Engine
) -> None:
    answer = submit(mllp_inbox(twin), adt("A1"))
    assert (answer.status, answer.control_id, answer.http_status) == ("accepted", "A1", 202)
    assert msa(answer)[:2] == ["AA", "A1"]
    assert states(db) == [("A1", "received")]
    assert answer.journaled is not None and answer.journaled.id == answer.message_id


def test_a_resent_message_is_answered_as_the_first_time_and_journaled_once(
    twin: CommitterTwin, db: Engine
) -> None:
    inbox = mllp_inbox(twin)
    first = submit(inbox, adt("R1"))
    again = submit(inbox, adt("R1"))
    assert (again.status, again.message_id, again.http_status) == (
        "duplicate",
        first.message_id,
        200,
    )
    assert msa(again)[:2] == ["AA", "R1"]
    assert states(db) == [("R1", "received")]


def test_a_refused_message_is_kept_as_a_dead_letter_and_answered_ar_with_its_reason(
    twin: CommitterTwin, db: Engine
) -> None:
    orm = adt("X1").replace(b"ADT^A28^ADT_A05", b"ORM^O01")
    answer = submit(mllp_inbox(twin), orm)
    assert (answer.status, answer.code, answer.http_status) == (
        "rejected",
        "unsupported_message_type",
        422,
    )
    assert msa(answer)[0] == "AR" and "ORM O01" in answer.reason
    assert states(db) == [("X1", "dead_lettered")]


def test_a_message_the_journal_cannot_store_is_answered_ae_and_nothing_is_kept(
    twin: CommitterTwin, db: Engine
) -> None:
    twin.down = True
    answer = submit(mllp_inbox(twin), adt("D1"))
    assert (answer.status, answer.message_id, answer.http_status) == ("unavailable", None, 503)
    assert msa(answer)[0] == "AE"
    assert states(db) == []


def test_answer_after_processing_says_what_the_pipeline_made_of_the_message(
    twin: CommitterTwin,
) -> None:
    inbox = mllp_inbox(twin, answer_after="processing", answer_timeout=3.0)
    twin.ends[1] = EndState(State.DEAD_LETTERED, "invalid_document", "no author")
    answer = submit(inbox, adt("P1"))
    assert twin.waited == [(1, 3.0)]
    assert answer.status == "accepted"  # journaled; the pipeline refused it afterwards
    assert msa(answer)[0] == "AR" and answer.http_status == 422
    assert answer.end == twin.ends[1]


def test_answer_after_commit_does_not_wait_for_the_pipeline(twin: CommitterTwin) -> None:
    twin.ends[1] = EndState(State.DEAD_LETTERED, "invalid_document", "no author")
    answer = submit(mllp_inbox(twin), adt("C1"))
    assert twin.waited == [] and answer.end is None and msa(answer)[0] == "AA"


def test_an_application_ack_asked_alone_waits_for_the_pipeline_even_after_commit(
    twin: CommitterTwin,
) -> None:
    enhanced = adt("E1").replace(b"|P|2.5", b"|P|2.5|||NE|AL")
    twin.ends[1] = EndState(State.DELIVERED)
    answer = submit(mllp_inbox(twin), enhanced)
    assert twin.waited == [(1, 10.0)] and msa(answer)[0] == "AA"


# -- batches ---------------------------------------------------------------------------------


def test_a_batch_is_journaled_whole_and_gets_one_batch_acknowledgement(
    twin: CommitterTwin, db: Engine
) -> None:
    payload = "\r".join(
        [
            "FHS|^~\\&|LAB|CHU|||||||F1",
            "BHS|^~\\&|LAB|CHU|||||||B1",
            ADT.format(cid="M1"),
            ADT.format(cid="M2"),
            "BTS|2",
            "FTS|1",
        ]
    ).encode()
    answer = submit(mllp_inbox(twin), payload)
    assert (answer.status, answer.control_id) == ("accepted", "F1")
    assert states(db) == [("M1", "received"), ("M2", "received")]
    assert answer.ack is not None
    text = answer.ack.decode()
    assert text.startswith("FHS|") and "BHS|" in text
    assert text.count("MSA|AA|M1") == 1 and text.count("MSA|AA|M2") == 1


def test_a_batch_the_journal_cannot_store_is_unavailable_as_a_whole(
    twin: CommitterTwin, db: Engine
) -> None:
    twin.down = True
    payload = "\r".join([ADT.format(cid="N1"), ADT.format(cid="N2")]).encode()
    answer = submit(mllp_inbox(twin), payload)
    assert answer.status == "unavailable" and states(db) == []


# -- documents (HTTP, directory) and AMQP ----------------------------------------------------


def http_inbox(twin: CommitterTwin, **options: Any) -> Inbox:
    rules = DocumentRules("docs", ("CDA^*",), "UNICODE UTF-8")
    return Inbox(rules, twin, **options)  # type: ignore[arg-type]


def test_a_document_gets_an_http_status_and_no_hl7_acknowledgement(
    twin: CommitterTwin, db: Engine
) -> None:
    answer = submit(http_inbox(twin), (CDA_SAMPLES / "VAC_2023.01.xml").read_bytes())
    assert (answer.status, answer.http_status, answer.ack) == ("accepted", 202, None)
    assert states(db) == [(answer.control_id, "received")] and answer.control_id


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (EndState(State.DELIVERED), 200),
        (EndState(State.HELD, "902", "waiting for its patient"), 202),
        (EndState(State.DEAD_LETTERED, "cisis_header", "no author"), 422),
        (EndState(State.DEAD_LETTERED, NotDocumentOwner.code, "another sender's"), 403),
    ],
)
def test_a_document_answered_after_processing_gets_the_status_of_its_end_state(
    twin: CommitterTwin, end: EndState, status: int
) -> None:
    twin.ends[1] = end
    inbox = http_inbox(twin, answer_after="processing")
    answer = submit(inbox, (CDA_SAMPLES / "VAC_2023.01.xml").read_bytes())
    assert (answer.end, answer.http_status) == (end, status)


def test_a_refused_payload_is_kept_as_a_dead_letter_for_that_reason(
    twin: CommitterTwin, db: Engine
) -> None:
    head = (CDA_SAMPLES / "VAC_2023.01.xml").read_bytes()[:2048]
    answer = submit(http_inbox(twin), head, refused=MessageTooLarge("file exceeds the limit"))
    assert (answer.status, answer.code) == ("rejected", "message_too_large")
    assert [s for _, s in states(db)] == ["dead_lettered"]


def test_a_source_may_add_transport_metadata_between_check_and_journal(
    twin: CommitterTwin, db: Engine
) -> None:
    inbox = Inbox(MessageRules("lab", ("ADT^*",), "UNICODE UTF-8"), twin)  # type: ignore[arg-type]

    async def amqp_like() -> Answer:
        prepared = await inbox.check(adt("Q1"), "amqp:-/lab")
        prepared.row.properties = '{"routing_key": "lab"}'
        return await inbox.journal(prepared)

    answer = asyncio.run(amqp_like())
    assert (answer.status, answer.ack) == ("accepted", None)
    with db.connect() as conn:
        kept = conn.execute(select(messages.c.properties)).scalar_one()
    assert kept == '{"routing_key": "lab"}'


def test_journal_soon_answers_like_journal_and_needs_no_task_when_nothing_waits(
    twin: CommitterTwin,
) -> None:
    inbox = mllp_inbox(twin)

    async def both() -> tuple[Answer, Answer, bool, bool]:
        fast = inbox.journal_soon(await inbox.check(adt("S1"), "peer"))
        slow = inbox.journal_soon(
            await inbox.check(adt("S2").replace(b"|P|2.5", b"|P|2.5|||NE|AL"), "peer")
        )
        return (
            await fast,
            await slow,
            isinstance(fast, asyncio.Task),
            isinstance(slow, asyncio.Task),
        )

    fast, slow, fast_task, slow_task = asyncio.run(both())
    assert (fast.status, msa(fast)[:2]) == ("accepted", ["AA", "S1"])
    assert (slow.status, msa(slow)[:2]) == ("accepted", ["AA", "S2"])
    assert (fast_task, slow_task) == (False, True)  # the application ACK alone waits


# -- checking: on the loop or off it; a fault refuses the payload, or escapes -----------------


class Noting(MessageRules):
    """Message rules that note the thread each payload is checked in."""

    threads: list[str]

    def prepare(self, payload: bytes, peer: str = "", sender: str = "") -> Prepared:
        self.threads.append(threading.current_thread().name)
        return super().prepare(payload, peer, sender)


class Faulty(MessageRules):
    """Message rules with a bug: they fail on every payload, quoting it in the exception."""

    def prepare(self, payload: bytes, peer: str = "", sender: str = "") -> Prepared:
        raise RuntimeError(f"cannot read {payload!r}")


def large_adt(cid: str) -> bytes:
    """A message over the offload's inline limit (a long NTE)."""
    return adt(cid) + b"\rNTE|1||" + b"x" * INLINE_MAX


def test_a_small_message_is_checked_inline_a_large_one_is_left_to_check(
    twin: CommitterTwin,
) -> None:
    inbox = mllp_inbox(twin)
    small = inbox.check_inline(adt("I1"), "peer", "cert:lab")
    assert small is not None
    assert (small.row.control_id, small.error, small.row.sender) == ("I1", None, "cert:lab")
    assert inbox.check_inline(large_adt("I2"), "peer") is None
    # A refusal (an oversized frame's head) is checked inline whatever its size.
    refused = inbox.check_inline(large_adt("I3"), "peer", refused=MessageTooLarge("too large"))
    assert refused is not None
    assert (refused.row.control_id, refused.row.error_code) == ("I3", "message_too_large")


def test_check_goes_off_the_loop_exactly_when_check_inline_declines(twin: CommitterTwin) -> None:
    rules = Noting("adt", ("ADT^*",), "UNICODE UTF-8")
    rules.threads = []
    inbox = Inbox(rules, twin)  # type: ignore[arg-type]

    async def both() -> tuple[Prepared, Prepared]:
        return await inbox.check(adt("T1"), "peer"), await inbox.check(large_adt("T2"), "peer")

    small, large = asyncio.run(both())
    assert (small.row.control_id, large.row.control_id) == ("T1", "T2")
    assert large.error is None
    main = threading.current_thread().name
    assert rules.threads[0] == main and rules.threads[1] != main  # the large one: a worker


def test_a_document_alone_up_to_its_inline_limit_is_checked_inline(twin: CommitterTwin) -> None:
    """A document received alone is screened up to its header only (DocumentRules.inline_max):
    900 KB stay on the loop, where an HL7 message of that size would not."""
    inbox = http_inbox(twin)
    document = (CDA_SAMPLES / "VAC_2023.01.xml").read_bytes()
    padded = document + b"<!--" + b" " * (900 * 1024 - len(document)) + b"-->"
    prepared = inbox.check_inline(padded, "peer")
    assert prepared is not None and prepared.error is None and prepared.row.control_id
    assert inbox.check_inline(padded + b" " * 200 * 1024, "peer") is None
    assert mllp_inbox(twin).check_inline(adt("H1") + b" " * 900 * 1024, "peer") is None


def test_a_fault_while_checking_refuses_the_payload_unless_the_source_asks_for_it(
    twin: CommitterTwin,
) -> None:
    """check and check_inline refuse it (naming the exception's class only: its message
    quotes the payload); check_or_raise lets it out, for a source that retries (AMQP)."""
    inbox = Inbox(Faulty("lab", ("ADT^*",), "UNICODE UTF-8"), twin)  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        inline = inbox.check_inline(adt("F1"), "peer")
        awaited = asyncio.run(inbox.check(adt("F1"), "peer"))
    assert [(e["event"], e["error"]) for e in logs] == [("intake_failed", "RuntimeError")] * 2
    assert not any("F1" in str(e) for e in logs)  # the payload stays out of the log
    for refused in (inline, awaited):
        assert refused is not None
        row = refused.row
        assert (row.control_id, row.state, row.error_code) == ("F1", "dead_lettered", "parse_error")
        assert row.error_reason == "the payload could not be read (RuntimeError)"
    with pytest.raises(RuntimeError, match="cannot read"):
        inbox.check_or_raise(adt("F1"), "amqp:-/lab")


def test_check_or_raise_checks_a_large_payload_on_the_loop(twin: CommitterTwin) -> None:
    rules = Noting("adt", ("ADT^*",), "UNICODE UTF-8")
    rules.threads = []
    inbox = Inbox(rules, twin)  # type: ignore[arg-type]
    prepared = inbox.check_or_raise(large_adt("O1"), "amqp:-/lab")
    assert (prepared.row.control_id, prepared.error) == ("O1", None)
    assert rules.threads == [threading.current_thread().name]


@pytest.mark.parametrize("kind", [MessageRules, Faulty])
def test_a_poisoned_payload_is_a_dead_letter_that_keeps_its_control_id(
    twin: CommitterTwin, kind: type[MessageRules]
) -> None:
    """Read like any other first (a fault reading it: read up to its header only)."""
    inbox = Inbox(kind("lab", ("ADT^*",), "UNICODE UTF-8"), twin)  # type: ignore[arg-type]
    poison = PoisonMessage("dead-lettered by the broker after 5 failed deliveries")
    prepared = inbox.check_poisoned(adt("P1"), "amqp:-/lab", poison)
    assert (prepared.row.control_id, prepared.row.error_code) == ("P1", "poison_message")
    assert prepared.row.raw == adt("P1")
