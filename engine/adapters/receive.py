"""Receiving one payload for a source without a protocol of its own (HTTP, directory): intake
rules, journal commit, and the outcome a sender or a file mover acts on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import structlog

from engine.adapters.offload import OFFLOAD
from engine.errors import EngineError

if TYPE_CHECKING:  # the runtime imports the sources through the channel models
    from engine.intake.committer import GroupCommitter
    from engine.intake.inbox import Intake, Prepared

log = structlog.get_logger("engine.receive")

Status = Literal["accepted", "duplicate", "rejected", "unavailable"]


@dataclass(frozen=True, slots=True)
class Received:
    """What became of one payload once the journal answered."""

    status: Status
    message_id: int | None = None
    control_id: str = ""
    code: str = ""
    reason: str = ""


async def receive(
    intake: Intake,
    committer: GroupCommitter,
    payload: bytes,
    peer: str,
    refused: EngineError | None = None,
    sender: str = "",
) -> Received:
    """Journal ``payload`` (or, with ``refused``, keep it as a dead letter for that reason)
    and say what became of it. Nothing is acknowledged before the journal commit. ``sender``
    is the identity the source proved (see :meth:`Intake.prepare`). A large payload is
    checked off the event loop; an unexpected failure checking it refuses it (AR)."""
    prepared = await OFFLOAD.prepare(intake, payload, peer, sender, refused)
    if prepared.batch is not None:
        from engine.adapters.receive_batch import receive_batch  # batches only pay for it

        return await receive_batch(intake, committer, prepared)
    result = await committer.submit(prepared.row)
    control_id = prepared.row.control_id or ""
    if isinstance(result, EngineError):
        return Received("unavailable", None, control_id, result.code, result.reason)
    log_outcome(intake.channel, prepared, result.id, result.duplicate)
    if result.ack_code != "AA":
        code, reason = result.error_code or "", result.error_reason or ""
        return Received("rejected", result.id, control_id, code, reason)
    return Received("duplicate" if result.duplicate else "accepted", result.id, control_id)


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
