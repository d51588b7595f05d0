"""Record-store writes gathered across the messages of one pipeline batch.

While a batch is open on a connection (:func:`opened`), the observation rows of its messages
wait in memory and go to the database in one statement when the batch is flushed (before its
end states and commit), instead of one per message: on PostgreSQL one ``COPY`` (two round trips
whatever the number of rows, a few µs of client CPU a row, where a pipelined ``executemany``
sent each row as a statement of its own), on SQLite one ``executemany``
(:class:`engine.fastsql.RowsInsert`). The rows wait as tuples of their column values, already
converted for the database (:data:`OBSERVATION_INSERT`), and get their ids in the order they
were added.
Patient lookups are remembered for the batch as well.

Anything that could read or move rows still in memory, or change a patient, flushes the rows and
forgets the lookups first (:func:`settle`): the record store does so before every operation but
the plain filing of results (ADT, merge, identity change, documents).

Outside a batch (tests, the CLI, a batch redone one message at a time) nothing waits: writes go
out at once, as before. The state lives in ``Connection.info`` and is dropped with the batch
(:func:`closed`): a rolled-back batch leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from engine.fastsql import RowsInsert
from engine.store.record_core import observations

_KEY = "aiguillage.batch_writes"
#: The observation insert; a row is the values of its ``columns``, converted for the database.
OBSERVATION_INSERT = RowsInsert(observations)


@dataclass(slots=True)
class BatchWrites:
    #: Values of OBSERVATION_INSERT.columns, converted (RowsInsert.run_converted).
    observation_rows: list[Sequence[Any]] = field(default_factory=list)
    #: Patient lookups of this batch, by what was looked up (see engine.store.patients).
    lookups: dict[Any, Any] = field(default_factory=dict)


def current(conn: Connection) -> BatchWrites | None:
    """The open batch of this connection, if any."""
    found: BatchWrites | None = conn.info.get(_KEY)
    return found


@contextmanager
def opened(conn: Connection) -> Iterator[BatchWrites]:
    """Gather writes on ``conn`` for the block; whatever was not flushed is dropped after it
    (the caller flushes before it commits, and rolls back on error)."""
    batch = BatchWrites()
    conn.info[_KEY] = batch
    try:
        yield batch
    finally:
        conn.info.pop(_KEY, None)


def flush(conn: Connection) -> None:
    """Send the gathered rows (one statement); lookups stay remembered."""
    batch = current(conn)
    if batch is None or not batch.observation_rows:
        return
    rows, batch.observation_rows = batch.observation_rows, []
    OBSERVATION_INSERT.run_converted(conn, rows)


def settle(conn: Connection) -> None:
    """Flush the rows and forget the lookups: before a write that may read or move rows, or
    change a patient."""
    batch = current(conn)
    if batch is None:
        return
    flush(conn)
    batch.lookups.clear()


def add_observation_rows(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Keep the rows (by column name) for the batch's flush; False when no batch is open
    (write them now)."""
    if current(conn) is None:
        return False
    columns = OBSERVATION_INSERT.columns
    values: list[Sequence[Any]] = [tuple(r[k] for k in columns) for r in rows]
    return add_converted_observations(conn, OBSERVATION_INSERT.convert(conn.dialect, values))


def add_converted_observations(conn: Connection, rows: list[Sequence[Any]]) -> bool:
    """Keep the rows (values of ``OBSERVATION_INSERT.columns``, converted) for the batch's
    flush; False when no batch is open (write them now)."""
    batch = current(conn)
    if batch is None:
        return False
    batch.observation_rows.extend(rows)
    return True
