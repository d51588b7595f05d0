"""What became of journaled messages once the pipeline was done with them, for sources that
answer after processing (``answer_after: processing``): one query per tick serves every waiter."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from engine.journal.message_tables import PENDING_STATES, State, messages

_m = messages.c
#: Time between two looks at the journal while messages are waited for.
#: How long the poll rests while the database cannot be read.
OUTAGE_SECONDS = 0.5
TICK_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class EndState:
    """A message's state once the pipeline left it: ended, held or in review."""

    state: State
    code: str = ""
    reason: str = ""


class OutcomeWatcher:
    def __init__(self, db: Engine) -> None:
        self.db = db
        self._waiting: dict[int, list[asyncio.Future[EndState]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, message_id: int, timeout: float) -> EndState | None:
        """The message's end state, or None when the pipeline has not left it in ``timeout``
        seconds (it is still waiting for a retry, or the pipeline is behind)."""
        fut: asyncio.Future[EndState] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(message_id, []).append(fut)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiting.get(message_id, [])
            with contextlib.suppress(ValueError):
                waiters.remove(fut)
            if not waiters:
                self._waiting.pop(message_id, None)

    async def _poll(self) -> None:
        while self._waiting:
            try:
                ended = await asyncio.to_thread(self._ended, list(self._waiting))
            except SQLAlchemyError:  # a database outage: keep polling; waiters time out alone
                await asyncio.sleep(OUTAGE_SECONDS)
                continue
            for message_id, end in ended.items():
                for fut in self._waiting.pop(message_id, []):
                    if not fut.done():
                        fut.set_result(end)
            await asyncio.sleep(TICK_SECONDS)

    def _ended(self, ids: list[int]) -> dict[int, EndState]:
        query = select(_m.id, _m.state, _m.error_code, _m.error_reason).where(
            _m.id.in_(ids), _m.state.not_in([s.value for s in PENDING_STATES])
        )
        with self.db.connect() as conn:
            return {
                r.id: EndState(State(r.state), r.error_code or "", r.error_reason or "")
                for r in conn.execute(query)
            }
