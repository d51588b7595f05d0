"""The log lines of payloads the inbox journaled: one per message (received, resend, dead
letter), and for a batch one line for the batch first. Identifiers only, never content."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from engine.intake.prepared import Prepared
from engine.journal.records import Appended

log = structlog.get_logger("engine.receive")


def log_outcome(channel: str, prepared: Prepared, message_id: int, duplicate: bool) -> None:
    row = prepared.row
    if duplicate:
        log.info(
            "message_duplicate", channel=channel, message_id=message_id, control_id=row.control_id
        )
    elif row.error_code:
        log.warning(
            "message_dead_lettered",
            channel=channel,
            message_id=message_id,
            control_id=row.control_id,
            stage="intake",
            code=row.error_code,
        )
    else:
        log.info(
            "message_received",
            channel=channel,
            message_id=message_id,
            control_id=row.control_id,
            type=f"{row.message_type}^{row.trigger}",
        )


def log_batch(channel: str, prepared: Prepared, results: Sequence[Appended]) -> None:
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
        log_outcome(channel, message, result.id, result.duplicate)
