"""Group commit for intake: every payload received in one event-loop turn goes to the writer
thread as one batch, and the writer commits all waiting batches in one transaction.

The hand-off is per batch, not per message (DESIGN.md §6 measured a per-message thread hand-off
slower than committing inline), and keeps the event loop free while the disk syncs.

A batch not committed within ``commit_timeout`` seconds (another process holds the database's
lock, the disk stalls) is answered :class:`StoreUnavailable` at that deadline, whatever the
writer is doing: the senders hear AE (CE, 503) instead of nothing. The writer skips a batch
it takes after its deadline; one it was already committing may still commit, and the sender's
resend is then recognised as a duplicate (contract 3): nothing is lost or stored twice.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from engine.errors import StoreUnavailable
from engine.intake.outcomes import EndState, OutcomeWatcher
from engine.intake.sink import CommitSink, Done, Result
from engine.journal.records import NewMessage

log = structlog.get_logger("engine.committer")

#: At most one log line per this many seconds while commits time out (a stall lasts).
TIMEOUT_LOG_SECONDS = 1.0


class GroupCommitter:
    def __init__(
        self, writer: CommitSink, max_batch: int = 512, commit_timeout: float = 5.0
    ) -> None:
        self.writer = writer
        self.max_batch = max_batch
        self.commit_timeout = commit_timeout
        self._rows: list[NewMessage] = []
        self._waiters: list[asyncio.Future[Result]] = []
        self._scheduled = False
        self._timed_out = 0
        self._logged_at = float("-inf")
        self.outcomes = OutcomeWatcher(writer.engine)

    async def outcome(self, message_id: int, timeout: float) -> EndState | None:
        """What the pipeline made of a committed message (None: not done in ``timeout``)."""
        return await self.outcomes.wait(message_id, timeout)

    def submit(self, row: NewMessage) -> asyncio.Future[Result]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Result] = loop.create_future()
        self._rows.append(row)
        self._waiters.append(fut)
        if len(self._rows) >= self.max_batch:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)
        return fut

    def submit_all(self, rows: list[NewMessage]) -> list[asyncio.Future[Result]]:
        """Rows that commit together or not at all (the messages of one HL7 batch): they go
        to the writer in one job, so in one transaction."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Result]] = [loop.create_future() for _ in rows]
        self._rows.extend(rows)
        self._waiters.extend(futures)
        if len(self._rows) >= self.max_batch:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)
        return futures

    def flush(self) -> None:
        self._scheduled = False
        if not self._rows:
            return
        rows, waiters = self._rows, self._waiters
        self._rows, self._waiters = [], []
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.commit_timeout, self._expire, waiters)
        deadline = time.monotonic() + self.commit_timeout
        self.writer.submit(rows, deliver_to_loop(loop, waiters, timer), deadline)

    def _expire(self, waiters: list[asyncio.Future[Result]]) -> None:
        """The deadline passed before the writer answered: the senders hear it now (the
        writer's late answer finds their futures done and is dropped)."""
        failure = StoreUnavailable(
            f"the journal did not commit the message within {self.commit_timeout:g} s; "
            "send it again"
        )
        expired = [fut for fut in waiters if not fut.done()]
        for fut in expired:
            fut.set_result(failure)
        self._timed_out += len(expired)
        if expired:  # the database did not answer in time: an outage until the writer commits
            self.writer.state.down("timeout", "journal_commit", len(expired))
        now = time.monotonic()
        if self._timed_out and now - self._logged_at >= TIMEOUT_LOG_SECONDS:
            log.warning(
                "journal_commit_timeout", messages=self._timed_out, seconds=self.commit_timeout
            )
            self._timed_out, self._logged_at = 0, now


def deliver_to_loop(
    loop: asyncio.AbstractEventLoop,
    futures: list[asyncio.Future[Result]],
    timer: asyncio.TimerHandle | None = None,
) -> Done:
    """A ``done`` callback that resolves asyncio futures from the sink's thread (and cancels
    their deadline ``timer``)."""

    def done(results: list[Result]) -> None:
        loop.call_soon_threadsafe(_resolve, futures, results, timer)

    return done


def _resolve(
    futures: list[asyncio.Future[Result]],
    results: list[Result],
    timer: asyncio.TimerHandle | None = None,
) -> None:
    if timer is not None:
        timer.cancel()
    for fut, result in zip(futures, results, strict=True):
        if not fut.done():  # answered at its deadline already: one answer per sender
            fut.set_result(result)
