"""What a failed message becomes: retrying, dead-lettered, held for its patient, or in review.

Told by the worker when a message's pipeline raised, in the caller's transaction (the message's
own writes already rolled back to its savepoint).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import Connection

from engine.channels.config import ErrorPolicy
from engine.errors import IdentityError
from engine.journal import holds
from engine.journal.journal import Journal
from engine.journal.message_tables import State
from engine.journal.records import Pending
from engine.pipeline.identify.review import open_review
from engine.pipeline.pipeline import Pipeline, StageError

log = structlog.get_logger("engine.worker")


def backoff_delay(policy: ErrorPolicy, attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential, capped."""
    b = policy.backoff
    delay: float = min(b.max_seconds, b.initial_seconds * b.multiplier ** (attempt - 1))
    return delay


def failed(
    conn: Connection,
    journal: Journal,
    pipeline: Pipeline,
    pending: Pending,
    now: datetime,
    exc: StageError,
) -> None:
    error = exc.error
    if isinstance(error, IdentityError):
        parked(conn, journal, pending, now, exc.stage, error)
        return
    attempt = pending.attempts + 1
    policy = pipeline.config.errors
    retry = error.transient and attempt < policy.max_attempts
    state = State.RETRYING if retry else State.DEAD_LETTERED
    if state is State.DEAD_LETTERED:
        pipeline.dead_lettered(conn, pending, error, now)
    next_at = now + timedelta(seconds=backoff_delay(policy, attempt)) if retry else None
    journal.finish(
        conn,
        pending,
        state,
        now,
        stage=exc.stage,
        code=error.code,
        error_class=type(error).__name__,
        reason=error.reason,
        next_attempt_at=next_at,
    )
    log.warning(
        "message_retrying" if retry else "message_dead_lettered",
        message_id=pending.id,
        stage=exc.stage,
        code=error.code,
        attempt=attempt,
    )


def parked(
    conn: Connection,
    journal: Journal,
    pending: Pending,
    now: datetime,
    stage: str,
    error: IdentityError,
) -> None:
    """Held for its patient (902) or queued for identity review (903-905): not dead."""
    held = error.disposition == "held"
    state = State.HELD if held else State.REVIEW
    journal.finish(
        conn,
        pending,
        state,
        now,
        stage=stage,
        code=error.code,
        error_class=type(error).__name__,
        reason=error.reason,
    )
    if held:
        holds.park(conn, pending.id, error.keys)
    else:
        open_review(conn, pending.id, pending.channel, error, now)
    log.warning(
        "message_held" if held else "message_in_identity_review",
        message_id=pending.id,
        stage=stage,
        code=error.code,
    )
