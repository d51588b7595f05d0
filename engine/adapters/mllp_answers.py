"""The answers of one MLLP connection: each frame's row is journaled, then its ACK is written,
in the order the frames came (with ``ack_after: processing``, once the pipeline is done).

The sender's MSH-15/16 choose the answers: a commit ACK alone; the application ACK alone once
the pipeline has decided (MSH-15 NE, MSH-16 AL/ER/SU); or both (MSH-15 and MSH-16 AL), the
application ACK then following as a message of its own on the same connection."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Protocol

import structlog

from engine.adapters.mllp_framing import frame
from engine.adapters.receive import log_outcome
from engine.errors import EngineError
from engine.metrics import ACK_LATENCY

if TYPE_CHECKING:
    from engine.adapters.mllp import MllpServer
    from engine.intake.inbox import Prepared
    from engine.intake.outcomes import EndState
    from engine.journal.records import Appended
    from engine.pipeline.writer import Result

log = structlog.get_logger("engine.mllp")


class Answering(Protocol):
    """The connection the answers go to."""

    peer: str

    def write(self, framed: bytes) -> None: ...

    def answered(self) -> None: ...

    def close(self, reason: str) -> None: ...


class Answers:
    def __init__(self, server: MllpServer, conn: Answering) -> None:
        self.server = server
        self.conn = conn
        self._last_answer: asyncio.Future[None] | None = None
        self._later: set[asyncio.Future[None]] = set()  # application ACKs on their way

    def journal(self, prepared: Prepared) -> None:
        """Hand the row to the group commit; answer once it is durable (or refused)."""
        if prepared.batch is not None:
            from engine.adapters.mllp_batch import journal_batch  # batches only pay for it

            self._last_answer = journal_batch(self, prepared, self._last_answer)
            return
        fut = self.server.committer.submit(prepared.row)
        fut.add_done_callback(lambda f: self._committed(prepared, f.result()))

    def _committed(self, prepared: Prepared, result: Result) -> None:
        waits = self.server.config.ack_after == "processing" or prepared.application_only
        chained = self._last_answer is not None and not self._last_answer.done()
        if waits or chained:  # behind an answer that waits: in the chain, in order
            self._answer_later(prepared, result)
        else:
            self._answer(prepared, result)

    def _answer_later(self, prepared: Prepared, result: Result) -> None:
        """Answer once the pipeline is done with the message, in the order received."""
        previous = self._last_answer
        self._last_answer = asyncio.ensure_future(
            self._after_processing(previous, prepared, result)
        )

    async def _after_processing(
        self, previous: asyncio.Future[None] | None, prepared: Prepared, result: Result
    ) -> None:
        processed = None
        # Enhanced mode: the commit ACK (CA) answers at once, behind the earlier answers only;
        # the application ACK asked alone (MSH-15 NE) waits for the pipeline.
        after_processing = prepared.application_only or (
            not prepared.enhanced and self.server.config.ack_after == "processing"
        )
        if after_processing and not isinstance(result, EngineError) and result.ack_code == "AA":
            timeout = self.server.config.ack_timeout_seconds
            processed = await self.server.committer.outcome(result.id, timeout)
        if previous is not None:
            await previous
        self._answer(prepared, result, processed)

    def _answer(
        self, prepared: Prepared, result: Result, processed: EndState | None = None
    ) -> None:
        intake = self.server.intake
        try:
            if isinstance(result, EngineError):
                ack = intake.ack(prepared, None, result)
            else:
                ack = intake.ack(prepared, result, None, processed)
                log_outcome(intake.channel, prepared, result.id, result.duplicate)
            framed = frame(ack) if ack is not None else None
        except Exception as exc:  # never leave a sender waiting in silence
            log.error("mllp_ack_failed", peer=self.conn.peer, error=type(exc).__name__)
            self.conn.answered()
            self.conn.close("ack_failed")
            return
        if framed is not None:
            self.conn.write(framed)
            ACK_LATENCY.labels(intake.channel).observe(time.monotonic() - prepared.read_at)
        self.conn.answered()
        if (
            prepared.application_after
            and not isinstance(result, EngineError)
            and result.ack_code == "AA"
            and self.server.config.application_acks == "connection"
        ):
            task = asyncio.ensure_future(self._application_ack(prepared, result))
            self._later.add(task)
            task.add_done_callback(self._later.discard)

    async def _application_ack(self, prepared: Prepared, result: Appended) -> None:
        """The application ACK following a CA, once the pipeline has decided (past
        ``ack_timeout_seconds``: AA, the message being kept), if MSH-16 asks for it."""
        timeout = self.server.config.ack_timeout_seconds
        processed = await self.server.committer.outcome(result.id, timeout)
        try:
            ack = self.server.intake.ack(prepared, result, None, processed, application=True)
            framed = frame(ack) if ack is not None else None
        except Exception as exc:  # the commit ACK went out: log, and keep the connection
            log.error("mllp_application_ack_failed", peer=self.conn.peer, error=type(exc).__name__)
            return
        if framed is not None:
            self.conn.write(framed)
