"""The pipeline worker: takes journaled messages in arrival order and runs their pipeline.

Every runner drives it (:mod:`engine.pipeline.runner`): in the writer thread between intake
commits, in a pipeline process of its own, or as a distributed worker. All three go through
:meth:`Worker.run` and the one claim (:func:`engine.journal.claim.claim_pending`); they differ
only in what they ask for (the next due messages, or the groups of some work items).

One batch loop for all: a batch is one transaction. On the happy path its messages run one after
the other with no savepoint; their observation rows and end states go out in one statement each
(:mod:`engine.store.batch`), so the database sees a few statements per message and a handful per
batch. When any message raises, the whole transaction is rolled back and the batch is redone one
message at a time, each in a savepoint: a bad message then costs only itself (it dead-letters,
retries or is held alone) and the others are filed once. Either way a crash leaves a message
either fully applied and ``delivered`` or not applied and still ``received`` (contracts 1-3).
One worker per patient at a time keeps per-patient order (contract 4): a batch runs in arrival
order, and a message waiting for a retry holds back later messages of the same patient.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from sqlalchemy.engine import Connection, Engine

from engine.db import READS_ONLY, unsynced_commits
from engine.errors import TransformError
from engine.fastsql import raw
from engine.hl7v2.msh import asks_application_ack
from engine.journal import holds
from engine.journal.claim import Group, claim_pending
from engine.journal.journal import Journal, utcnow
from engine.journal.message_tables import State
from engine.journal.records import Pending
from engine.logs import error_fields
from engine.metrics import PIPELINE_LATENCY
from engine.pipeline.claimed import lock_groups, not_undone
from engine.pipeline.failures import backoff_delay, failed
from engine.pipeline.identify.prefetch import prefetch_patients
from engine.pipeline.outbox_sender import OutboxSender
from engine.pipeline.pipeline import Outcome, Pipeline, StageError
from engine.pipeline.stages import Work
from engine.store import batch as store_batch

__all__ = ["MIN_SLICE", "SLICE_SECONDS", "Ran", "Worker", "backoff_delay"]

log = structlog.get_logger("engine.worker")

#: Messages a batch handles before it may be interrupted: the pipeline always makes progress.
MIN_SLICE = 8
SLICE_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Ran:
    """What one batch did: messages handled; held messages an ADT released meanwhile (their
    ids); groups another worker held (distributed: not waited for)."""

    handled: int
    released: list[int]
    busy: set[Group]


@dataclass(slots=True)
class Done:
    """What a batch did: messages handled, delivered, and ended otherwise without error."""

    handled: int = 0
    delivered: list[int] = field(default_factory=list)
    filtered: list[tuple[int, str]] = field(default_factory=list)


class Worker:
    def __init__(
        self,
        engine: Engine,
        journal: Journal,
        pipelines: dict[str, Pipeline],
        batch_size: int = 64,
        write_lock: AbstractContextManager[Any] | None = None,
        batched: bool = True,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.pipelines = pipelines
        self.batch_size = batch_size
        #: Held around each transaction when another process writes to the same SQLite file.
        self.write_lock = write_lock or nullcontext()
        #: False: every batch runs one message at a time in savepoints (the earlier path).
        self.batched = batched
        self.processed = 0
        #: Batches whose first pass failed and were redone one message at a time.
        self.redone = 0
        self.outbox = OutboxSender(engine, pipelines, self.write_lock)
        #: Run the stages that need no database ahead of each batch's transaction, outside
        #: the write lock (a pipeline process: intake commits meanwhile on another core).
        self.prepares_ahead = False
        self._ahead: dict[int, Work] = {}
        self._ahead_taken = 0  # of them, taken up by the batches since the last read
        #: A channel answers after processing: every batch's commit is synced.
        self.answers_after_processing = any(p.answers_after_processing for p in pipelines.values())

    def close(self) -> None:
        """Release what the destinations hold open (broker connections)."""
        for pipeline in self.pipelines.values():
            pipeline.close()

    def has_due_work(self) -> bool:
        with self.write_lock, self.engine.connect() as conn:
            return bool(claim_pending(conn, utcnow(), 1, self.pipelines))

    # -- the batch loop -------------------------------------------------------------------

    def run_once(self, interrupt: Callable[[], bool] | None = None) -> int:
        """One batch of the next due messages; how many it handled (see :meth:`run`)."""
        return self.run(interrupt=interrupt).handled

    def run(
        self,
        groups: Mapping[Group, int] | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> Ran:
        """Claim and process one batch in one transaction: the next due messages, or with
        ``groups`` the pending messages of each group up to its id (a distributed worker's
        work items).

        ``interrupt`` is asked after each message (once ``MIN_SLICE`` are done, or the slice
        has run ``SLICE_SECONDS``: a slow network destination): when it says so, the batch
        ends early and the rest stays journaled for the next one. The writer uses it to commit
        waiting intake, whose senders wait for their ACK.

        With ``groups``, the transaction first takes the groups' locks without waiting (see
        :func:`~engine.pipeline.claimed.lock_groups`): a group another worker holds is not
        waited for (a slow patient must not hold up the others); it comes back in
        ``Ran.busy``, for a new work item.
        """
        busy: set[Group] = set()

        def claim(conn: Connection, now: datetime) -> list[Pending]:
            if groups is None:
                # A batch that intake already waits for ends after MIN_SLICE: claim no more
                # (each claimed row is read whole, raw bytes included).
                waiting = interrupt is not None and interrupt()
                limit = MIN_SLICE if waiting else self.batch_size
                return claim_pending(conn, now, limit, self.pipelines)
            # Taken again by a redo: the rollback of the first pass released the locks.
            busy.clear()
            busy.update(lock_groups(conn, groups))
            mine = {g: n for g, n in groups.items() if g not in busy}
            return claim_pending(conn, now, None, self.pipelines, mine) if mine else []

        if self.prepares_ahead and groups is None:
            self._prepare_ahead()
        with self.write_lock, self.engine.connect() as conn:
            done, released = self._committed(conn, claim, interrupt)
        # Outside the write lock, which the outbox takes itself (a process runner's lock is
        # not reentrant): what this batch queued, or retries of what earlier batches queued.
        if done is None:
            self.outbox.flush()
            return Ran(0, [], busy)
        self._ended(done)
        return Ran(done.handled, released, busy)

    def _prepare_ahead(self) -> None:
        """The next batch as a reader sees it (no write lock), each message through the
        stages that need no database (:meth:`Pipeline.ahead`): the transaction goes on from
        there for each message it claims unchanged (a message ahead but not claimed is kept
        for the next batch). Not read again while a slice's worth is still ahead (a batch
        cut short for intake leaves the rest of the last one)."""
        taken, self._ahead_taken = self._ahead_taken, 0
        if len(self._ahead) >= MIN_SLICE and taken:
            return  # else read again: what is left may have gone (an operator's discard)
        with self.engine.connect().execution_options(**READS_ONLY) as conn:
            now = utcnow()
            batch = claim_pending(conn, now, self.batch_size, self.pipelines)
            conn.rollback()
        ahead: dict[int, Work] = {}
        for pending in batch:
            work = self._ahead.get(pending.id)
            if work is None:
                work = self.pipelines[pending.channel].ahead(pending, now)
            if work is not None:
                ahead[pending.id] = work
        self._ahead = ahead

    def _committed(
        self,
        conn: Connection,
        claim: Callable[[Connection, datetime], list[Pending]],
        interrupt: Callable[[], bool] | None,
    ) -> tuple[Done | None, list[int]]:
        """The batch in one transaction, committed; with the held messages it released.

        The commit does not wait for the disk (:func:`~engine.db.unsynced_commits`: SQLite,
        ``durability: full``) unless a sender waits for the end state of one of its messages:
        a channel answering after processing, or a message whose MSH-16 asks for an
        application ACK. A batch found holding such a message is rolled back and claimed
        again with synced commits."""
        if self.answers_after_processing:
            return self._commit(conn, claim, interrupt)
        try:
            with unsynced_commits(conn) as relaxed:
                checked = partial(_nobody_waits, claim) if relaxed else claim
                return self._commit(conn, checked, interrupt)
        except _SyncNeeded:  # rolled back as the block ended
            return self._commit(conn, claim, interrupt)

    def _commit(
        self,
        conn: Connection,
        claim: Callable[[Connection, datetime], list[Pending]],
        interrupt: Callable[[], bool] | None,
    ) -> tuple[Done | None, list[int]]:
        done = self._transaction(conn, claim, interrupt)
        if done is None:
            conn.rollback()
            return None, []
        # Released (older) messages: the next claim takes them; a distributed worker hands
        # them out as new work items.
        released: list[int] = conn.info.pop(holds.RELEASED, [])
        conn.commit()
        return done, released

    def _ended(self, done: Done) -> None:
        self.processed += done.handled
        for ident in done.delivered:
            log.info("message_delivered", message_id=ident)
        for ident, reason in done.filtered:
            log.info("message_filtered", message_id=ident, reason=reason)
        self.outbox.flush()

    # -- one batch ------------------------------------------------------------------------

    def _transaction(
        self,
        conn: Connection,
        claim: Callable[[Connection, datetime], list[Pending]],
        interrupt: Callable[[], bool] | None,
    ) -> Done | None:
        """Claim a batch and process it in the connection's transaction, which the caller
        commits (None: nothing to do). First in one pass without savepoints; when that raises,
        the transaction is rolled back and the batch claimed again and redone one message at a
        time. Stops after a message that released held ones."""
        sent: dict[int, set[str]] = {}  # network deliveries a rollback cannot undo
        known: dict[int, Exception] = {}  # the error that made the first pass fail
        for fast in (True, False) if self.batched else (False,):
            now = utcnow()
            batch = claim(conn, now)
            if not batch:
                return None
            for pending in batch:
                pending.delivered_to |= sent.get(pending.id, set())
            before = {p.id: set(p.delivered_to) for p in batch}
            try:
                return self._pass(conn, batch, now, interrupt, fast, known)
            except Exception as exc:
                if not fast:
                    raise
                if isinstance(exc, _MessageFailed):  # not run again: it is recorded as it failed
                    known[exc.message_id] = exc.error
                conn.rollback()
                conn.info.pop(holds.RELEASED, None)
                sent = not_undone(batch, before, self.pipelines)
                self.redone += 1
                log.info("pipeline_batch_redone", messages=len(batch), error=type(exc).__name__)
        return None  # pragma: no cover (the last pass returns or raises)

    def _pass(
        self,
        conn: Connection,
        batch: list[Pending],
        now: datetime,
        interrupt: Callable[[], bool] | None,
        fast: bool,
        known: dict[int, Exception],
    ) -> Done:
        if fast:
            with store_batch.opened(conn):
                # The batch's patients in one lookup, not one (or more) per message.
                prefetch_patients(conn, batch, self.pipelines)
                done = self._loop(conn, batch, now, interrupt, fast, known)
                store_batch.flush(conn)
        else:
            done = self._loop(conn, batch, now, interrupt, fast, known)
        self.journal.finish_many(conn, done.delivered, now)
        return done

    def _loop(
        self,
        conn: Connection,
        batch: list[Pending],
        now: datetime,
        interrupt: Callable[[], bool] | None,
        fast: bool,
        known: dict[int, Exception],
    ) -> Done:
        done = Done()
        started = time.monotonic()
        held: set[tuple[str, str]] = set()  # patients whose message went to retrying
        for pending in batch:
            key = (pending.channel, pending.patient_key or "")
            if pending.patient_key and key in held:
                continue  # stays as it is until the earlier message is through (contract 4)
            done.handled += 1
            outcome = self._process(conn, pending, now, fast, known.get(pending.id))
            if outcome is None:
                if pending.outcome is State.RETRYING:
                    held.add(key)
            elif outcome.state is State.DELIVERED:
                done.delivered.append(pending.id)
            else:
                self.journal.finish(conn, pending, outcome.state, now)
                done.filtered.append((pending.id, outcome.reason))
            if holds.RELEASED in conn.info:
                break  # released messages are older: they go before this patient's later ones
            long = time.monotonic() - started > SLICE_SECONDS  # a slow destination
            if interrupt is not None and (done.handled >= MIN_SLICE or long) and interrupt():
                break
        return done

    def _process(
        self, conn: Connection, pending: Pending, now: datetime, fast: bool, error: Exception | None
    ) -> Outcome | None:
        """One message's pipeline: its outcome, or None when it failed (its end state is then
        recorded). ``fast``: no savepoint, and an error ends the pass (the batch is redone).
        ``error``: how the message failed in the first pass (recorded without running it)."""
        started = time.perf_counter()
        pipeline = self.pipelines[pending.channel]
        # Each message its own time, as when it ran alone: what it files must come after what
        # an earlier message of the batch did (unmerge finds rows filed since a merge by time).
        now = max(now, utcnow())
        try:
            if error is not None:
                self._failed(conn, pipeline, pending, now, error)
                return None
            if fast:
                ahead = self._ahead.pop(pending.id, None)
                self._ahead_taken += ahead is not None
                try:
                    return pipeline.process(conn, pending, now, ahead)
                except Exception as exc:
                    raise _MessageFailed(pending.id, exc) from exc
            # A raw savepoint: SQLAlchemy's begin_nested() costs more than the message's writes.
            raw(conn, "SAVEPOINT message")
            try:
                outcome = pipeline.process(conn, pending, now)
            except Exception as exc:
                raw(conn, "ROLLBACK TO SAVEPOINT message")
                raw(conn, "RELEASE SAVEPOINT message")
                self._failed(conn, pipeline, pending, now, exc)
                return None
            raw(conn, "RELEASE SAVEPOINT message")
            return outcome
        finally:
            PIPELINE_LATENCY.labels(pending.channel).observe(time.perf_counter() - started)

    def _failed(
        self, conn: Connection, pipeline: Pipeline, pending: Pending, now: datetime, exc: Exception
    ) -> None:
        if not isinstance(exc, StageError):  # a bug must not stop the engine: dead-letter it
            where = error_fields(exc)["where"]
            error = TransformError(f"internal error {type(exc).__name__} at {where}: {exc}")
            log.error("pipeline_internal_error", message_id=pending.id, **error_fields(exc))
            exc = StageError("pipeline", error)
        failed(conn, self.journal, pipeline, pending, now, exc)


def _nobody_waits(
    claim: Callable[[Connection, datetime], list[Pending]], conn: Connection, now: datetime
) -> list[Pending]:
    """``claim``'s batch; _SyncNeeded when a message of it asks for an application ACK."""
    batch = claim(conn, now)
    if any(asks_application_ack(p.raw) for p in batch):
        raise _SyncNeeded
    return batch


class _SyncNeeded(Exception):
    """A batch claimed for unsynced commits holds a message whose sender waits for its end
    state."""


class _MessageFailed(Exception):
    """A message's error in a batch's first pass: the pass ends, the batch is redone."""

    def __init__(self, message_id: int, error: Exception) -> None:
        super().__init__(f"message {message_id} failed")
        self.message_id = message_id
        self.error = error
