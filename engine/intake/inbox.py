"""The inbox: the one way every source (MLLP, HTTP, directory, AMQP) hands a payload in.

``Inbox.submit(payload, peer)`` checks the payload with the channel's rules
(:mod:`engine.intake.rules`; off the event loop when it is large), journals it through the group
committer (contract 1: nothing is answered before the commit), waits, when the channel says
``answer_after: processing``, for what the pipeline made of it, and returns one typed
:class:`Answer`. A source only turns the answer into its protocol's form: MLLP writes
``Answer.ack``, HTTP sends ``Answer.http_status``, the directory moves the file, AMQP
acknowledges the delivery. An HL7 v2 batch (FHS/BHS) goes through the same call and gets one
answer: its batch acknowledgement.

Sources with a step of their own between the check and the journal call the two halves of
``submit``, the check always through the inbox (its rules and its offload):

- MLLP checks a frame in its read callback with :meth:`Inbox.check_inline`, synchronously: a
  small message costs no task. Only a payload that must leave the loop is awaited through
  :meth:`Inbox.check`. It then charges refusals to the peer's junk budget and journals with
  :meth:`Inbox.journal_soon` (summaries of what it refused unread: :meth:`Inbox.record`).
- AMQP checks a delivery with :meth:`Inbox.check_or_raise`, where an unexpected exception
  escapes so that the delivery is requeued (the broker dead-letters it after its delivery
  limit), and what the broker dead-lettered with :meth:`Inbox.check_poisoned`; it adds the
  transport metadata and calls :meth:`Inbox.journal`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from engine.channels.answering import AnswerAfter
from engine.channels.config import ChannelConfig
from engine.channels.duplicates import DEFAULT_POLICY
from engine.channels.sources import HttpSourceConfig, MllpSourceConfig
from engine.errors import EngineError, NotDocumentOwner
from engine.hl7v2.ack import AckCode
from engine.intake.arrivals import log_batch, log_outcome
from engine.intake.batches import batch_answer, is_stored, prepare_batch
from engine.intake.committer import GroupCommitter
from engine.intake.offload import OFFLOAD, Offload, prepare_safely
from engine.intake.outcomes import EndState
from engine.intake.prepared import Prepared
from engine.intake.rules import DocumentRules, MessageRules
from engine.intake.sink import Result
from engine.journal.message_tables import State
from engine.journal.records import Appended

Status = Literal["accepted", "duplicate", "rejected", "unavailable"]

#: HTTP status of each answer made at the commit.
_COMMIT_STATUS: dict[Status, int] = {
    "accepted": 202,
    "duplicate": 200,
    "rejected": 422,
    "unavailable": 503,
}
#: Refusals the pipeline makes on the sender's authority rather than the content's.
FORBIDDEN_CODES = frozenset({NotDocumentOwner.code})


def rules_for(channel: ChannelConfig) -> MessageRules:
    """The intake rules for what the channel's source receives: HL7 v2 messages, or CDA
    documents alone (``payload: cda``)."""
    src = channel.source
    kind = DocumentRules if src.payload == "cda" else MessageRules
    # Only sources that declare a duplicate policy (MLLP) have one; others the default.
    duplicates = getattr(src, "duplicates", DEFAULT_POLICY)
    batches = prepare_batch if getattr(src, "batches", "refuse") == "accept" else None
    # MLLP says whether NE/ER/SU senders are answered; other sources always answer.
    always_ack = src.always_ack if isinstance(src, MllpSourceConfig) else True
    return kind(channel.name, channel.accept, src.default_charset, always_ack, duplicates, batches)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a source tells its sender once the inbox is done with a payload."""

    #: accepted (journaled), duplicate (a resend: answered as the first time), rejected (kept
    #: as a dead letter: intake refused it), unavailable (not stored: send it again).
    status: Status
    #: The journal id (a batch: its first message's); None when nothing was stored.
    message_id: int | None
    #: MSH-10, the document id, or a batch's id.
    control_id: str = ""
    #: Why it was refused or not stored (a stable code and a reason free of patient data).
    code: str = ""
    reason: str = ""
    #: The HL7 acknowledgement (unframed) for sources answering in HL7 (MLLP); None when the
    #: sender asked for none (MSH-15/16, an ACK received) or the source answers otherwise.
    ack: bytes | None = None
    #: What the pipeline made of the message, when the answer waited for it (None: it did not
    #: wait, or the pipeline had not decided within ``answer_timeout_seconds``).
    end: EndState | None = None
    #: The journal's result for a single message (for the application ACK that follows a
    #: commit ACK in enhanced mode); None for a batch or when nothing was stored.
    journaled: Appended | None = None

    @property
    def http_status(self) -> int:
        """The HTTP status answering it: at the commit 202 accepted, 200 resend, 422 refused
        (403 for a sender's lack of authority), 503 not stored; after processing 200 stored
        or filtered, 202 kept (waiting for its patient, or for review), 422 or 403 refused."""
        end = self.end
        if end is None:
            status = _COMMIT_STATUS[self.status]
            return 403 if status == 422 and self.code in FORBIDDEN_CODES else status
        if end.state in (State.DELIVERED, State.FILTERED):
            return 200
        if end.state in (State.HELD, State.REVIEW):
            return 202
        return 403 if end.code in FORBIDDEN_CODES else 422


class Inbox:
    """A channel's inbox: its intake rules, where they run (``offload``: on the loop or in
    the process's worker pool), the journal's group committer, and when its answers are
    made."""

    def __init__(
        self,
        rules: MessageRules,
        committer: GroupCommitter,
        *,
        answer_after: AnswerAfter = "commit",
        answer_timeout: float = 10.0,
        hl7_answers: bool = False,
        offload: Offload = OFFLOAD,
    ) -> None:
        self.rules = rules
        self.offload = offload
        self.committer = committer
        self.answer_after = answer_after
        self.answer_timeout = answer_timeout
        #: Whether answers carry an HL7 ACK (``Answer.ack``): sources answering in HL7 only.
        self.hl7_answers = hl7_answers

    @property
    def channel(self) -> str:
        return self.rules.channel

    @staticmethod
    def for_channel(channel: ChannelConfig, committer: GroupCommitter) -> Inbox:
        source = channel.source
        rules = rules_for(channel)
        if isinstance(source, MllpSourceConfig | HttpSourceConfig):
            return Inbox(
                rules,
                committer,
                answer_after=source.answer_after,
                answer_timeout=source.answer_timeout_seconds,
                hl7_answers=isinstance(source, MllpSourceConfig),
            )
        return Inbox(rules, committer)

    async def submit(
        self, payload: bytes, peer: str, sender: str = "", refused: EngineError | None = None
    ) -> Answer:
        """Check, journal and answer ``payload`` (with ``refused``: keep it as a dead letter
        for that reason, e.g. an oversized body's head). ``sender`` is the identity the source
        proved (see :meth:`MessageRules.prepare`)."""
        return await self.journal(await self.check(payload, peer, sender, refused))

    async def check(
        self, payload: bytes, peer: str, sender: str = "", refused: EngineError | None = None
    ) -> Prepared:
        """The payload checked for the journal: on the loop when :meth:`check_inline` may,
        else in a worker; an unexpected failure checking it refuses it (``parse_error``, AR)
        rather than escaping."""
        prepared = self.check_inline(payload, peer, sender, refused)
        if prepared is None:  # never a refusal: refusals are checked inline
            prepared = await self.offload.prepare_elsewhere(self.rules, payload, peer, sender)
        return prepared

    def check_inline(
        self, payload: bytes, peer: str, sender: str = "", refused: EngineError | None = None
    ) -> Prepared | None:
        """:meth:`check` done now, when the payload may be checked on the loop (a small one, a
        refusal, a document alone up to ``DocumentRules.inline_max``); None when it must go
        off the loop: await :meth:`check` then. For a source's synchronous callback, where a
        task per message would cost throughput."""
        if not self.offload.inline(payload, refused, self.rules):
            return None
        return prepare_safely(self.rules, payload, peer, sender, refused)

    def check_or_raise(self, payload: bytes, peer: str, sender: str = "") -> Prepared:
        """The payload checked on the loop whatever its size, an unexpected exception escaping
        instead of refusing it. For a transport that retries what failed (AMQP requeues the
        delivery, and its broker gives up after the delivery limit: :meth:`check_poisoned`):
        a passing fault must not make a dead letter of every message it meets."""
        return self.rules.prepare(payload, peer, sender)

    def check_poisoned(
        self, payload: bytes, peer: str, error: EngineError, sender: str = ""
    ) -> Prepared:
        """A payload its transport gave up on (``error``: the broker's delivery limit), kept as
        a dead letter. It is read like any other first, so that it keeps its control id and a
        message journaled before is recognised as a resend."""
        return self.rules.prepare_poisoned(payload, peer, error, sender)

    async def journal(self, prepared: Prepared) -> Answer:
        """Journal a checked payload and answer it (after processing when the channel, or
        the sender's MSH-15/16, asks for it)."""
        if prepared.batch is not None:
            return await self._journal_batch(prepared)
        result: Result = await self.committer.submit(prepared.row)
        end = None
        if isinstance(result, Appended) and result.ack_code == AckCode.AA and self._waits(prepared):
            end = await self.committer.outcome(result.id, self.answer_timeout)
        return self._answer(prepared, result, end)

    def journal_soon(self, prepared: Prepared) -> asyncio.Future[Answer]:
        """:meth:`journal` as a future. A single message whose answer waits for nothing
        (the MLLP hot path) costs no task: it is answered in the commit's callback."""
        if self.answers_later(prepared):
            return asyncio.ensure_future(self.journal(prepared))
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def committed(done: asyncio.Future[Result]) -> None:
            try:
                answer.set_result(self._answer(prepared, done.result(), None))
            except Exception as exc:  # building the ACK failed: the source decides what then
                answer.set_exception(exc)

        self.committer.submit(prepared.row).add_done_callback(committed)
        return answer

    def answers_later(self, prepared: Prepared) -> bool:
        """Whether the answer may come after answers to payloads committed later: a batch,
        or an answer waiting for the pipeline."""
        return prepared.batch is not None or self._waits(prepared)

    def record(self, prepared: Prepared) -> None:
        """Journal a row no sender waits for (a summary of what a source refused unread)."""
        self.committer.submit(prepared.row)

    async def application_ack(self, prepared: Prepared, answer: Answer) -> bytes | None:
        """The application ACK that follows a commit ACK (MSH-15 and MSH-16 ask for both),
        once the pipeline has decided (past ``answer_timeout``: AA, the message being kept);
        None when none is due."""
        journaled = answer.journaled
        if not prepared.application_after or journaled is None or journaled.ack_code != "AA":
            return None
        processed = await self.committer.outcome(journaled.id, self.answer_timeout)
        return self.rules.ack(prepared, journaled, None, processed, application=True)

    def _waits(self, prepared: Prepared) -> bool:
        if not self.hl7_answers:
            return self.answer_after == "processing"
        # Enhanced mode: the commit ACK (CA) answers at once; the application ACK asked alone
        # (MSH-15 NE, MSH-16 AL/ER/SU) waits for the pipeline whatever the channel says.
        return prepared.application_only or (
            self.answer_after == "processing" and not prepared.enhanced
        )

    def _answer(self, prepared: Prepared, result: Result, end: EndState | None) -> Answer:
        control_id = prepared.row.control_id or ""
        ack = None
        if isinstance(result, EngineError):
            if self.hl7_answers:
                ack = self.rules.ack(prepared, None, result)
            return Answer("unavailable", None, control_id, result.code, result.reason, ack)
        if self.hl7_answers:
            ack = self.rules.ack(prepared, result, None, end)
        log_outcome(self.channel, prepared, result.id, result.duplicate)
        if result.ack_code != AckCode.AA:
            code, reason = result.error_code or "", result.error_reason or ""
            return Answer("rejected", result.id, control_id, code, reason, ack, end, result)
        status: Status = "duplicate" if result.duplicate else "accepted"
        return Answer(status, result.id, control_id, ack=ack, end=end, journaled=result)

    async def _journal_batch(self, prepared: Prepared) -> Answer:
        """The messages of a batch commit together (one job: all stored, or none) and get one
        answer. A refused batch is its payload as one dead letter (``rejected``), and so is a
        batch whose every message was refused; one with some refused is ``accepted``, each
        refused message being a dead letter of its own."""
        parts = prepared.batch
        assert parts is not None
        rows = [prepared.row] if prepared.error is not None else parts.rows
        results: list[Result] = list(await asyncio.gather(*self.committer.submit_all(rows)))
        stored = [r for r in results if isinstance(r, Appended)]
        if len(stored) < len(results):
            failure = next(r for r in results if not isinstance(r, Appended))
            ack = batch_answer(prepared, results) if self.hl7_answers else None
            return Answer("unavailable", None, parts.batch_id, failure.code, failure.reason, ack)
        end = None
        if self.answer_after == "processing" and prepared.error is None and is_stored(results):
            end = await self._outcomes(results)
        ack = batch_answer(prepared, results, end) if self.hl7_answers else None
        log_batch(self.channel, prepared, stored)
        first_id = stored[0].id if stored else None
        if prepared.error is not None:
            code, reason = stored[0].error_code or "", stored[0].error_reason or ""
            return Answer("rejected", first_id, parts.batch_id, code, reason, ack)
        if stored and all(r.ack_code != AckCode.AA for r in stored):
            code, reason = stored[0].error_code or "", "every message of the batch was refused"
            return Answer("rejected", first_id, parts.batch_id, code, reason, ack)
        duplicate = bool(stored) and all(r.duplicate for r in stored)
        status: Status = "duplicate" if duplicate else "accepted"
        return Answer(status, first_id, parts.batch_id, ack=ack)

    async def _outcomes(self, results: Sequence[Result]) -> list[EndState | None]:
        """What the pipeline made of each accepted message of a batch (None: not done in
        time, or refused at intake)."""

        async def one(result: Result) -> EndState | None:
            if isinstance(result, Appended) and result.ack_code == AckCode.AA:
                return await self.committer.outcome(result.id, self.answer_timeout)
            return None

        return list(await asyncio.gather(*(one(r) for r in results)))


class Source(Protocol):
    """A channel's receiving end (MLLP listener, HTTP endpoint, watched directory, AMQP
    consumer): what it receives goes to its inbox."""

    inbox: Inbox

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
