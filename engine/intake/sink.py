"""Where intake hands its rows for their journal commit, and what it hears back.

Intake knows only this interface; the writer thread (:mod:`engine.pipeline.writer`) implements
it, and owns the database connection the commits go through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from sqlalchemy.engine import Engine

from engine.database_state import DatabaseState
from engine.errors import StoreUnavailable
from engine.journal.records import Appended, NewMessage

#: What a waiting sender gets: the journal's answer, or the reason it could not store.
Result = Appended | StoreUnavailable
#: Told (in the sink's thread) the results of a batch, in the order of its rows.
Done = Callable[[list[Result]], None]


class CommitSink(Protocol):
    """Commits intake's batches to the journal, many batches to a transaction."""

    @property
    def engine(self) -> Engine:
        """The database the journal lives in."""
        ...

    @property
    def state(self) -> DatabaseState:
        """Up or down since when: intake says so when a commit times out."""
        ...

    def submit(self, rows: Sequence[NewMessage], done: Done, deadline: float | None = None) -> None:
        """Queue rows for the journal; ``done`` gets their results. Rows still queued at
        ``deadline`` (``time.monotonic()``) are not committed: ``done`` gets
        :class:`StoreUnavailable` for them."""
        ...
