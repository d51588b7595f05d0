"""MLLP answers for an HL7 v2 batch (see :mod:`engine.intake.batches`): the messages of
the batch go to the writer as one job, and once they are durable (with ``ack_after:
processing``, once the pipeline is done with them) the batch acknowledgement is written, in
its place among the connection's answers. A refused batch is its payload as one dead letter,
answered by a batch acknowledgement whose one ACK says AR and why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from engine.adapters.mllp_framing import frame
from engine.adapters.receive_batch import log_batch
from engine.intake.batches import batch_answer, is_stored
from engine.journal.records import Appended
from engine.metrics import ACK_LATENCY

if TYPE_CHECKING:
    from engine.adapters.mllp_answers import Answers
    from engine.intake.inbox import Prepared
    from engine.intake.outcomes import EndState
    from engine.pipeline.writer import Result

log = structlog.get_logger("engine.mllp")


def journal_batch(
    answers: Answers, prepared: Prepared, previous: asyncio.Future[None] | None
) -> asyncio.Future[None]:
    """Hand the batch's rows to the group commit as one job; the returned task writes the
    answer after ``previous`` (the connection's last answer)."""
    parts = prepared.batch
    assert parts is not None
    rows = [prepared.row] if prepared.error is not None else parts.rows
    futures = answers.server.committer.submit_all(rows) if rows else []
    return asyncio.ensure_future(_answer(answers, prepared, futures, previous))


async def _answer(
    answers: Answers,
    prepared: Prepared,
    futures: list[asyncio.Future[Result]],
    previous: asyncio.Future[None] | None,
) -> None:
    server, conn = answers.server, answers.conn
    results: list[Result] = list(await asyncio.gather(*futures))
    processed = None
    if server.config.ack_after == "processing" and prepared.error is None and is_stored(results):
        processed = await _outcomes(answers, results)
    if previous is not None:
        await asyncio.wait([previous])  # its failure is its own
    channel = server.intake.channel
    try:
        ack = batch_answer(prepared, results, processed)
        framed = frame(ack) if ack is not None else None
    except Exception as exc:  # never leave a sender waiting in silence
        log.error("mllp_ack_failed", peer=conn.peer, error=type(exc).__name__)
        conn.answered()
        conn.close("ack_failed")
        return
    log_batch(channel, prepared, results)
    if framed is not None:
        conn.write(framed)
        ACK_LATENCY.labels(channel).observe(time.monotonic() - prepared.read_at)
    conn.answered()


async def _outcomes(answers: Answers, results: Sequence[Result]) -> list[EndState | None]:
    """What the pipeline made of each accepted message (None: not done in time, or refused
    at intake)."""
    committer = answers.server.committer
    timeout = answers.server.config.ack_timeout_seconds

    async def one(result: Result) -> EndState | None:
        if isinstance(result, Appended) and result.ack_code == "AA":
            return await committer.outcome(result.id, timeout)
        return None

    return list(await asyncio.gather(*(one(r) for r in results)))
