"""Group commit for intake: every payload received in one event-loop turn goes to the writer
thread as one batch, and the writer commits all waiting batches in one transaction.

The hand-off is per batch, not per message (DESIGN.md §6 measured a per-message thread hand-off
slower than committing inline), and keeps the event loop free while the disk syncs.
"""

from __future__ import annotations

import asyncio

from engine.journal.records import NewMessage
from engine.routes.outcomes import EndState, OutcomeWatcher
from engine.routes.writer import Result, Writer, deliver_to_loop


class GroupCommitter:
    def __init__(self, writer: Writer, max_batch: int = 512) -> None:
        self.writer = writer
        self.max_batch = max_batch
        self._rows: list[NewMessage] = []
        self._waiters: list[asyncio.Future[Result]] = []
        self._scheduled = False
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

    def flush(self) -> None:
        self._scheduled = False
        if not self._rows:
            return
        rows, waiters = self._rows, self._waiters
        self._rows, self._waiters = [], []
        self.writer.submit(rows, deliver_to_loop(asyncio.get_running_loop(), waiters))
