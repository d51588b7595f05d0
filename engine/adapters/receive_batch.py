"""A batch received by a source without a protocol of its own (the directory source): its
messages journaled in one commit (see :mod:`engine.intake.batches`), and what the file
mover acts on. A refused batch is ``rejected`` (its file goes to ``error/``, the payload is a
dead letter); so is a batch whose every message was refused. A batch with some messages
refused is ``accepted``: each refused message is a dead letter of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from engine.adapters.receive import Received, log_outcome
from engine.journal.records import Appended

if TYPE_CHECKING:
    from engine.intake.committer import GroupCommitter
    from engine.intake.inbox import Intake, Prepared
    from engine.pipeline.writer import Result

log = structlog.get_logger("engine.receive")


async def receive_batch(intake: Intake, committer: GroupCommitter, prepared: Prepared) -> Received:
    parts = prepared.batch
    assert parts is not None
    rows = [prepared.row] if prepared.error is not None else parts.rows
    results: list[Result] = list(await asyncio.gather(*committer.submit_all(rows)))
    stored = [r for r in results if isinstance(r, Appended)]
    if len(stored) < len(results):  # one job: all stored, or none
        failure = next(r for r in results if not isinstance(r, Appended))
        return Received("unavailable", None, parts.batch_id, failure.code, failure.reason)
    log_batch(intake.channel, prepared, stored)
    if prepared.error is not None:
        first = stored[0]
        code, reason = first.error_code or "", first.error_reason or ""
        return Received("rejected", first.id, parts.batch_id, code, reason)
    first_id = stored[0].id if stored else None
    if stored and all(r.ack_code != "AA" for r in stored):
        code, reason = stored[0].error_code or "", "every message of the batch was refused"
        return Received("rejected", first_id, parts.batch_id, code, reason)
    duplicate = bool(stored) and all(r.duplicate for r in stored)
    return Received("duplicate" if duplicate else "accepted", first_id, parts.batch_id)


def log_batch(channel: str, prepared: Prepared, results: Sequence[Result]) -> None:
    """One line for the batch, then each message's as if received alone."""
    parts = prepared.batch
    assert parts is not None
    if prepared.error is not None:
        log.warning(
            "batch_refused", channel=channel, batch_id=parts.batch_id, code=prepared.error.code
        )
        messages = [prepared]
    else:
        log.info("batch_received", channel=channel, batch_id=parts.batch_id, messages=len(results))
        messages = parts.messages
    for message, result in zip(messages, results, strict=False):
        if isinstance(result, Appended):
            log_outcome(channel, message, result.id, result.duplicate)
