"""The answers of one MLLP connection: each frame, once the inbox has checked it, is journaled
through the inbox (:meth:`engine.intake.inbox.Inbox.journal_soon`), and its ACK is written in
the order the frames came (with ``answer_after: processing``, once the pipeline is done; for an
HL7 batch, its batch acknowledgement).

The sender's MSH-15/16 choose the answers: a commit ACK alone; the application ACK alone once
the pipeline has decided (MSH-15 NE, MSH-16 AL/ER/SU); or both (MSH-15 and MSH-16 AL), the
application ACK then following as a message of its own on the same connection."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog

from engine.adapters.mllp_framing import frame
from engine.channels.sources import MllpSourceConfig
from engine.intake.inbox import Answer, Inbox
from engine.intake.prepared import Prepared
from engine.metrics import ACK_LATENCY

log = structlog.get_logger("engine.mllp")


class Answering(Protocol):
    """The connection the answers go to."""

    peer: str

    def write(self, framed: bytes) -> None: ...

    def answered(self) -> None: ...

    def close(self, reason: str) -> None: ...


class Answers:
    def __init__(self, inbox: Inbox, config: MllpSourceConfig, conn: Answering) -> None:
        self.inbox = inbox
        self.config = config
        self.conn = conn
        self._last_answer: asyncio.Future[None] | None = None  # the chain of late answers
        self._later: set[asyncio.Future[None]] = set()  # application ACKs on their way

    def journal(self, prepared: Prepared) -> None:
        """Hand the payload to the inbox; write its answer once the inbox has one, after the
        answers of the frames before it."""
        answer = self.inbox.journal_soon(prepared)
        previous = self._last_answer
        pending = previous is not None and not previous.done()
        if pending or self.inbox.answers_later(prepared):  # the chain keeps the frames' order
            self._last_answer = asyncio.ensure_future(self._in_turn(previous, prepared, answer))
            return
        # Commits complete in the order of the frames: each answer is written as it comes.
        answer.add_done_callback(lambda done: self._write(prepared, done))

    async def _in_turn(
        self,
        previous: asyncio.Future[None] | None,
        prepared: Prepared,
        answer: asyncio.Future[Answer],
    ) -> None:
        await asyncio.wait([f for f in (previous, answer) if f is not None])  # failures: their own
        self._write(prepared, answer)

    def _write(self, prepared: Prepared, done: asyncio.Future[Answer]) -> None:
        exc = done.exception()
        if exc is not None:  # never leave a sender waiting in silence
            log.error("mllp_ack_failed", peer=self.conn.peer, error=type(exc).__name__)
            self.conn.answered()
            self.conn.close("ack_failed")
            return
        answer = done.result()
        if answer.ack is not None:
            self.conn.write(frame(answer.ack))
            ACK_LATENCY.labels(self.inbox.channel).observe(time.monotonic() - prepared.read_at)
        self.conn.answered()
        if prepared.application_after and self.config.application_acks == "connection":
            task = asyncio.ensure_future(self._application_ack(prepared, answer))
            self._later.add(task)
            task.add_done_callback(self._later.discard)

    async def _application_ack(self, prepared: Prepared, answer: Answer) -> None:
        """The application ACK following a CA, if MSH-16 asks for it."""
        try:
            ack = await self.inbox.application_ack(prepared, answer)
        except Exception as exc:  # the commit ACK went out: log, and keep the connection
            log.error("mllp_application_ack_failed", peer=self.conn.peer, error=type(exc).__name__)
            return
        if ack is not None:
            self.conn.write(frame(ack))
