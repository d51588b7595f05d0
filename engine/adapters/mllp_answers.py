"""The answers of one MLLP connection: each frame's row is journaled, then its ACK is written,
in the order the frames came (with ``ack_after: processing``, once the pipeline is done)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

import structlog

from engine.adapters.mllp_framing import frame
from engine.adapters.receive import log_outcome
from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.adapters.mllp import MllpServer
    from engine.routes.intake import Prepared
    from engine.routes.outcomes import EndState
    from engine.routes.writer import Result

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

    def journal(self, prepared: Prepared) -> None:
        """Hand the row to the group commit; answer once it is durable (or refused)."""
        fut = self.server.committer.submit(prepared.row)
        if self.server.config.ack_after == "processing":  # every answer in the chain: in order
            fut.add_done_callback(lambda f: self._answer_later(prepared, f.result()))
        else:
            fut.add_done_callback(lambda f: self._answer(prepared, f.result()))

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
        # Enhanced mode: the commit ACK (CA) answers at once, behind the earlier answers only.
        if (
            not prepared.enhanced
            and not isinstance(result, EngineError)
            and result.ack_code == "AA"
        ):
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
        self.conn.answered()
