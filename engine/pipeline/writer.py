"""The writer thread: intake's commit sink (:class:`~engine.intake.sink.CommitSink`), and the
thread an in-thread pipeline runner works in.

SQLite allows one writer at a time, and a second writer waits in SQLite's busy handler (sleeps
of 1 ms and more) while it holds the event loop. So one thread does every write, in this order:
first the intake batches waiting for their commit (the senders wait for their ACK), all in one
transaction; then one short slice of pipeline work (:meth:`PipelineRunner.run_slice
<engine.pipeline.runner.PipelineRunner.run_slice>`: none when the pipeline runs in another
process or on distributed workers); then again. An ACK therefore waits at most
one pipeline slice, and under load many intake batches share each commit. Intake goes first:
while senders keep sending (a batch comes within ``INTAKE_GRACE`` of the last commit) intake
commits follow one another and the pipeline waits, ``PIPELINE_MAX_DEFER`` at most, unless it
is owed its share of the writer's time (``engine.pipeline_share``, see
:mod:`engine.pipeline.share`): sustained intake must not starve it.

A batch carries a deadline (its senders were answered "not stored" then, see
:class:`~engine.intake.committer.GroupCommitter`): one taken after its deadline is not
committed, so that a stall does not end with a commit of rows nobody waits for any more.

Database outages: a commit that fails on a dead connection (a restart, a failover, a proxy
that cut it while idle) is retried once on a fresh one before any sender hears AE. While the
database is out, the pipeline rests between tries but intake does not wait behind it: each
batch is tried (and answered) at once. :class:`~engine.database_state.DatabaseState` logs
the outage once, and its end.

The writer knows its runner only through :class:`~engine.pipeline.runner.PipelineRunner`: it
holds the runner's ``write_lock`` around each commit, says when intake batches wait, and tells
it of each commit (a pipeline process is woken, a distributed intake publishes work items).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence

import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from engine.database_state import DatabaseState
from engine.db import is_outage
from engine.errors import StoreUnavailable
from engine.intake.sink import Done, Result
from engine.journal.journal import Journal
from engine.journal.records import NewMessage
from engine.logs import error_fields
from engine.metrics import JOURNAL_COMMIT_LATENCY
from engine.pipeline.runner import PipelineRunner
from engine.pipeline.share import PipelineShare

log = structlog.get_logger("engine.writer")

#: Rows, who to tell, and the monotonic time after which nobody waits for them (None: no limit).
Job = tuple[Sequence[NewMessage], Done, float | None]

#: Seconds the writer waits for work when idle: retries fall due by time alone.
IDLE_POLL = 0.5
#: Seconds the writer waits for more intake after an intake commit before a pipeline slice,
#: and the longest it lets intake keep the lock from the pipeline (see ``_defer_pipeline``).
INTAKE_GRACE = 0.002
PIPELINE_MAX_DEFER = 0.04
#: PostgreSQL's limit on each statement of the writer's connection (ms): a commit waiting for a
#: lock gives up (the senders heard AE at their deadline long before).
WRITER_STATEMENT_TIMEOUT_MS = 30_000


class Writer:
    """Commits intake; between commits, lets its ``runner`` work (see the module's doc)."""

    def __init__(
        self,
        engine: Engine,
        journal: Journal,
        runner: PipelineRunner,
        state: DatabaseState | None = None,
        pipeline_share: float = 0.0,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.runner = runner
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self.state = state or DatabaseState(engine.url.render_as_string())
        #: Stop's requests for an idle round, and the last request a round answered.
        self._drain = threading.Condition()
        self._asked = self._idle_for = 0
        #: What the pipeline has had of this thread's time, and is owed.
        self.share = PipelineShare(pipeline_share)
        runner.attach(self.wake)

    def submit(self, rows: Sequence[NewMessage], done: Done, deadline: float | None = None) -> None:
        """Queue rows for the journal; ``done`` is called (in this thread) with the results.
        Rows still queued at ``deadline`` (``time.monotonic()``) are not committed: ``done``
        gets :class:`StoreUnavailable` for them."""
        self._jobs.put((rows, done, deadline))
        self.runner.intake_waiting(True)
        self._wake.set()

    def wake(self) -> None:
        """Look for work now (the runner has some for this thread)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def stop(self, drain_seconds: float = 10.0) -> None:
        """Commit what intake queued, finish the journaled work of an in-thread runner (up to
        ``drain_seconds``), stop (the runner itself is stopped by its owner).

        The writer thread itself says when nothing it can do is left (no due work, or the
        database is out): this thread never waits on the database, so a stop during an outage
        or a freeze ends (a writer still stuck in a frozen connection is left to the exit).
        """
        deadline = time.monotonic() + drain_seconds
        if self._thread is not None and self._thread.is_alive():
            with self._drain:
                self._asked += 1
                asked = self._asked
            self._wake.set()
            with self._drain:
                self._drain.wait_for(lambda: self._idle_for >= asked, drain_seconds)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
            if self._thread.is_alive():  # its connection is in use: not ours to close
                log.error("writer_stuck_at_stop", database=self.state.where)
            else:
                self._close()

    def _run(self) -> None:
        deferred_since: float | None = None  # intake has had the lock since then
        while not self._stopping.is_set() or not self._jobs.empty():
            asked = self._asked  # an idle round answers the stop requests made before it
            if self._commit_intake() and self._defer_pipeline(deferred_since):
                deferred_since = deferred_since or time.monotonic()
                continue
            deferred_since = None
            done = self._pipeline_slice()
            if done == 0 and self._jobs.empty():
                with self._drain:
                    self._idle_for = asked
                    self._drain.notify_all()
                self._wake.wait(IDLE_POLL)
                self._wake.clear()

    def _defer_pipeline(self, since: float | None) -> bool:
        """Intake first: after an intake commit, wait up to ``INTAKE_GRACE`` for the next batch
        (a sender that got its ACK sends its next message within a millisecond or two) rather
        than start a pipeline slice it would wait behind; but never defer the pipeline longer
        than ``PIPELINE_MAX_DEFER`` (then one slice runs, cut short as soon as intake waits).
        True when an intake batch is waiting and the pipeline may wait."""
        if self._stopping.is_set():
            return False
        if since is not None and time.monotonic() - since >= PIPELINE_MAX_DEFER:
            return False
        if self.share.owed():
            return False
        if self._jobs.empty():
            self._wake.clear()
            if self._jobs.empty():  # ``submit`` queues, then sets the event: none is missed
                self._wake.wait(INTAKE_GRACE)
        return not self._jobs.empty()

    def _pipeline_slice(self) -> int:
        """One slice (cut short when intake waits), its time counted for the share."""
        started = time.monotonic()
        try:
            handled = self.runner.run_slice(self._intake_waiting)
        except Exception as exc:  # the writer must outlive any bug, or every sender would hang
            log.error("writer_internal_error", **error_fields(exc))
            handled = 0
        self.share.spent_on_pipeline(time.monotonic() - started, handled)
        return handled

    def _intake_waiting(self) -> bool:
        return not self._jobs.empty()

    def _commit_intake(self) -> bool:
        """Commit the waiting intake batches; whether there were any to commit."""
        jobs = self._live_jobs(self._take_jobs())
        if not jobs:
            return False
        started = time.monotonic()
        rows = [row for batch, _, _ in jobs for row in batch]
        deadlines = [job[2] for job in jobs]
        last = None if None in deadlines else max(d for d in deadlines if d is not None)
        results = self._append(rows, last)
        # Lower the flag, then raise it again if a batch slipped in meanwhile: ``submit``
        # queues before it raises the flag, so no batch can wait behind a lowered flag.
        self.runner.intake_waiting(False)
        if not self._jobs.empty():
            self.runner.intake_waiting(True)
        start = 0
        for batch, done, _ in jobs:
            _tell(done, results[start : start + len(batch)])
            start += len(batch)
        try:
            self.runner.committed(rows, results)
        except Exception as exc:
            log.error("pipeline_notify_failed", **error_fields(exc))
        self.share.spent_on_intake(time.monotonic() - started)
        return True

    def _append(self, rows: list[NewMessage], deadline: float | None) -> list[Result]:
        """The journal's answers; a failure on a dead connection is tried again once on a fresh
        one while a sender still waits (a resend the first try did commit is recognised:
        contract 3). No ACK without a commit: a NAK for any failure."""
        for first in (True, False):
            reused = self._conn is not None  # it may have died since its last commit
            try:
                with self.runner.write_lock:
                    started = time.perf_counter()
                    results: list[Result] = list(self.journal.append(self._connection(), rows))
                    JOURNAL_COMMIT_LATENCY.observe(time.perf_counter() - started)
            except Exception as exc:
                self._close()
                dead = reused and is_outage(exc)
                if first and dead and (deadline is None or time.monotonic() < deadline):
                    log.info("journal_commit_retried", reason=self.state.reason(exc))
                    continue
                if not self.state.failed(exc, "journal_commit", len(rows)):
                    log.error("journal_commit_failed", error=type(exc).__name__, batch=len(rows))
                return [_NOT_STORED] * len(rows)
            self.state.succeeded()
            return results
        raise AssertionError("unreachable")

    def _take_jobs(self) -> list[Job]:
        jobs: list[Job] = []
        while True:
            try:
                jobs.append(self._jobs.get_nowait())
            except queue.Empty:
                return jobs

    def _live_jobs(self, jobs: list[Job]) -> list[Job]:
        """The jobs whose senders still wait; the others are told they were not stored."""
        now = time.monotonic()
        live = [job for job in jobs if job[2] is None or now < job[2]]
        if len(live) < len(jobs):
            late = [job for job in jobs if job[2] is not None and now >= job[2]]
            skipped = sum(len(rows) for rows, _, _ in late)
            log.warning("journal_commit_skipped_after_deadline", messages=skipped)
            for rows, done, _ in late:
                _tell(done, [_LATE] * len(rows))
        return live

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect()
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET statement_timeout = {WRITER_STATEMENT_TIMEOUT_MS}")
                conn.commit()
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None


_NOT_STORED = StoreUnavailable("the journal could not store the message; send it again")
_LATE = StoreUnavailable("the journal did not commit the message in time; send it again")


def _tell(done: Done, results: list[Result]) -> None:
    try:
        done(results)
    except Exception as exc:  # one waiter's failure must not stop the writer
        log.error("intake_answer_failed", error=type(exc).__name__)
