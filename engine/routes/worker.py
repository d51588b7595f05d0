"""The pipeline worker: takes journaled messages in arrival order and runs their pipeline.

It runs in the engine's writer thread (:mod:`engine.routes.writer`), between intake commits.

Each batch is one transaction: the record-store writes of every message and its end state
commit together, so a crash leaves a message either fully applied and ``delivered`` or not
applied and still ``received`` (contracts 1-3). One worker per engine keeps per-patient order
(contract 4); a message waiting for a retry holds back later messages of the same patient.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from engine.channels.models import ErrorPolicy
from engine.errors import IdentityError, TransformError
from engine.fastsql import raw
from engine.identity.review import open_review
from engine.journal import holds
from engine.journal.claim import Group, claim_groups, group_of
from engine.journal.journal import Journal, utcnow
from engine.journal.models import State
from engine.journal.records import Pending
from engine.logs import error_fields
from engine.metrics import PIPELINE_LATENCY
from engine.routes.outbox_sender import OutboxSender
from engine.routes.pipeline import Pipeline, StageError

log = structlog.get_logger("engine.worker")
#: The groups' locks in one round trip, without waiting: the keys obtained.
_TRY_LOCKS = text(
    "SELECT k FROM unnest(CAST(:keys AS bigint[])) AS t(k) WHERE pg_try_advisory_xact_lock(k)"
)

#: Messages a batch handles before it may be interrupted: the pipeline always makes progress.
MIN_SLICE = 8
SLICE_SECONDS = 0.05


def backoff_delay(policy: ErrorPolicy, attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential, capped."""
    b = policy.backoff
    delay: float = min(b.max_seconds, b.initial_seconds * b.multiplier ** (attempt - 1))
    return delay


class Worker:
    def __init__(
        self,
        engine: Engine,
        journal: Journal,
        pipelines: dict[str, Pipeline],
        batch_size: int = 64,
        write_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.pipelines = pipelines
        self.batch_size = batch_size
        #: Held around each transaction when another process writes to the same SQLite file.
        self.write_lock = write_lock or nullcontext()
        self.processed = 0
        self.outbox = OutboxSender(engine, pipelines, self.write_lock)

    def close(self) -> None:
        """Release what the destinations hold open (broker connections)."""
        for pipeline in self.pipelines.values():
            pipeline.close()

    def has_due_work(self) -> bool:
        with self.write_lock, self.engine.connect() as conn:
            return bool(self.journal.claim(conn, utcnow(), 1, self.pipelines))

    # -- one batch ------------------------------------------------------------------------

    def run_groups(
        self, upto: dict[Group, int], locks: dict[Group, int]
    ) -> tuple[list[int], set[Group]]:
        """The distributed worker's batch: the pending messages of each group up to its id,
        in one transaction, under the groups' PostgreSQL advisory locks (``locks``: a key per
        group). A group another worker holds is not waited for (a slow patient must not hold up
        the others): it comes back in the busy set, for a new work item. Also returns the ids
        of messages an ADT released meanwhile, for new work items."""
        with self.engine.connect() as conn:
            got = set(conn.execute(_TRY_LOCKS, {"keys": sorted(locks.values())}).scalars())
            busy = {g for g, key in locks.items() if key not in got}
            upto = {g: n for g, n in upto.items() if g not in busy}
            if not upto:
                conn.rollback()
                return [], busy
            now = utcnow()
            delivered: list[int] = []
            blocked: set[Group] = set()
            for row in claim_groups(conn, upto, self.pipelines):
                group = group_of(row[0], row[1], row[4])
                if group in blocked:
                    continue
                if row[7] == State.RETRYING and row[8] is not None and _aware(row[8]) > now:
                    blocked.add(group)  # waits for its retry; later messages wait behind it
                    continue
                pending = Pending(
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    row[4],
                    row[5],
                    set(filter(None, row[6].split(","))),
                )
                if self._process(conn, pending, now):
                    delivered.append(pending.id)
                elif pending.outcome is State.RETRYING:
                    blocked.add(group)
                if holds.RELEASED in conn.info:
                    break  # the released (older) messages first: the caller hands them out
            released: list[int] = conn.info.pop(holds.RELEASED, [])
            self.journal.finish_many(conn, delivered, now)
            conn.commit()
        self.processed += len(delivered)
        for ident in delivered:
            log.info("message_delivered", message_id=ident)
        self.outbox.flush()
        return released, busy

    def run_once(self, interrupt: Callable[[], bool] | None = None) -> int:
        """Process one batch in one transaction; returns how many messages it handled.

        ``interrupt`` is asked after each message (once ``MIN_SLICE`` are done, or the slice
        has run ``SLICE_SECONDS``: a slow network destination): when it says
        so, the batch ends early and the rest stays journaled for the next one. The writer uses
        it to commit waiting intake, whose senders wait for their ACK.
        """
        handled = 0
        started = time.monotonic()
        with self.write_lock, self.engine.connect() as conn:
            now = utcnow()
            batch = self.journal.claim(conn, now, self.batch_size, self.pipelines)
            if not batch:
                conn.rollback()
                self.outbox.flush()  # retries of what earlier batches queued
                return 0
            delivered: list[int] = []
            held: set[tuple[str, str]] = set()  # patients whose message went to retrying
            for pending in batch:
                key = (pending.channel, pending.patient_key or "")
                if pending.patient_key and key in held:
                    continue  # stays as it is until the earlier message is through (contract 4)
                handled += 1
                if self._process(conn, pending, now):
                    delivered.append(pending.id)
                elif pending.outcome is State.RETRYING:
                    held.add(key)
                if conn.info.pop(holds.RELEASED, False):
                    break  # released messages are older: the next batch takes them first
                long = time.monotonic() - started > SLICE_SECONDS  # a slow destination
                if interrupt is not None and (handled >= MIN_SLICE or long) and interrupt():
                    break
            self.journal.finish_many(conn, delivered, now)
            conn.commit()
        self.processed += handled
        for ident in delivered:
            log.info("message_delivered", message_id=ident)
        self.outbox.flush()
        return handled

    def _process(self, conn: Connection, pending: Pending, now: datetime) -> bool:
        """Run one message in a savepoint; True when delivered (recorded by the caller)."""
        started = time.perf_counter()
        try:
            return self._run_one(conn, pending, now)
        finally:
            PIPELINE_LATENCY.labels(pending.channel).observe(time.perf_counter() - started)

    def _run_one(self, conn: Connection, pending: Pending, now: datetime) -> bool:
        pipeline = self.pipelines[pending.channel]
        # A raw savepoint: SQLAlchemy's begin_nested() costs more than the message's own writes.
        raw(conn, "SAVEPOINT message")
        try:
            outcome = pipeline.process(conn, pending, now)
            raw(conn, "RELEASE SAVEPOINT message")
        except StageError as exc:
            _rollback_to_savepoint(conn)
            self._failed(conn, pipeline, pending, now, exc)
            return False
        except Exception as exc:  # a bug must not stop the engine: dead-letter the message
            _rollback_to_savepoint(conn)
            where = error_fields(exc)["where"]
            error = TransformError(f"internal error {type(exc).__name__} at {where}: {exc}")
            log.error("pipeline_internal_error", message_id=pending.id, **error_fields(exc))
            self._failed(conn, pipeline, pending, now, StageError("pipeline", error))
            return False
        if outcome.state is State.DELIVERED:
            return True
        self.journal.finish(conn, pending, outcome.state, now)
        log.info("message_filtered", message_id=pending.id, reason=outcome.reason)
        return False

    def _failed(
        self, conn: Connection, pipeline: Pipeline, pending: Pending, now: datetime, exc: StageError
    ) -> None:
        error = exc.error
        if isinstance(error, IdentityError):
            self._parked(conn, pending, now, exc.stage, error)
            return
        attempt = pending.attempts + 1
        policy = pipeline.config.errors
        retry = error.transient and attempt < policy.max_attempts
        state = State.RETRYING if retry else State.DEAD_LETTERED
        if state is State.DEAD_LETTERED:
            pipeline.dead_lettered(conn, pending, error, now)
        next_at = now + timedelta(seconds=backoff_delay(policy, attempt)) if retry else None
        self.journal.finish(
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

    def _parked(
        self, conn: Connection, pending: Pending, now: datetime, stage: str, error: IdentityError
    ) -> None:
        """Held for its patient (902) or queued for identity review (903-905): not dead."""
        held = error.disposition == "held"
        state = State.HELD if held else State.REVIEW
        self.journal.finish(
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


def _rollback_to_savepoint(conn: Connection) -> None:
    raw(conn, "ROLLBACK TO SAVEPOINT message")
    raw(conn, "RELEASE SAVEPOINT message")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
