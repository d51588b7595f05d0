"""Which journaled messages the pipeline takes next: one claim for every runner.

One scan of the pending messages (``received`` or ``retrying``) in arrival order, on indexes
of the pending states only (see :func:`_scan`): the claim costs the same with ten or ten
million ended messages behind it. The scan reads a few small columns; the picked messages'
payloads are then read by id (:func:`claim_pending`). Ordered per patient (contract 4): a
message waiting for its retry holds back the later messages of its group (a channel's
patient); the others go on.

The runners differ only in what they ask for: the next ``limit`` due messages of the
channels (in-thread and in-process runners), or every pending message of some groups up to
an id each, row-locked (distributed workers, which hold the groups' advisory locks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    String,
    bindparam,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.sql import ColumnElement

from engine.fastsql import FastStatement, id_binds, id_chunks, raw
from engine.journal.message_tables import PENDING_STATES, State, messages
from engine.journal.records import Pending

_m = messages.c

#: A unit of order: (channel, patient key), or ("", "#<message id>") for a message without one.
Group = tuple[str, str]
#: A group's "up to" that takes all of its pending messages.
WHOLE_GROUP = 2**62
#: Ids read per statement when the picked messages are loaded (unused places are NULL).
LOAD_IDS = 64

# The states as literals in the SQL text, not binds: PostgreSQL runs these statements prepared
# (psycopg prepares a statement from its fifth run), and a generic plan for ``state IN ($1,
# $2)`` cannot use the partial index ix_journal_messages_pending, whose predicate is this very
# text; on SQLite too, a partial index serves only a query that repeats its predicate.
_RECEIVED: ColumnElement[str] = literal_column(f"'{State.RECEIVED.value}'", String())
_RETRYING: ColumnElement[str] = literal_column(f"'{State.RETRYING.value}'", String())
_PENDING = _m.state.in_([_RECEIVED, _RETRYING])


class Scanned(NamedTuple):
    """A pending message as the scan sees it."""

    id: int
    channel: str
    patient_key: str | None
    #: A retry whose time has not come: it waits, and holds its group back (truthy).
    waiting: Any

    @property
    def group(self) -> Group:
        return group_of(self.id, self.channel, self.patient_key)


class Loaded(NamedTuple):
    """What the pipeline needs of a picked message besides what the scan read."""

    id: int
    raw: bytes
    charset: str
    attempts: int
    delivered_to: str
    sender: str | None
    state: str


class GroupStart(NamedTuple):
    """The first pending message of a group (the sweep's answer)."""

    id: int
    channel: str
    patient_key: str | None


def group_of(message_id: int, channel: str, patient_key: str | None) -> Group:
    """The unit of order of a message (contract 4)."""
    return (channel, patient_key) if patient_key else ("", f"#{message_id}")


def lock_key(group: Group) -> int:
    """A PostgreSQL advisory lock key (signed 64 bits) for a group."""
    digest = hashlib.blake2b("\x1f".join(group).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _scan(
    dialect: str, channels: tuple[str, ...] | None, *where: ColumnElement[bool]
) -> Select[Any]:
    """The pending messages of ``channels`` (None: all) in id order, up to ``:limit`` after
    ``:after``, each with whether it waits for its retry (at ``:now``).

    The states are literals (see above). PostgreSQL reads the partial index of pending
    messages in id order and stops at the limit, even as a generic plan. SQLite answers the
    same query with a sort of every pending row (it takes ``(state, id)`` for the ``IN``):
    there, one seek of ``(state, id)`` per state, each in id order and cut at the limit,
    merged. Either way one statement.
    """
    in_channels: ColumnElement[bool] = true()
    if channels is not None:
        # One bind per channel: an IN of a tuple is "expanding", rendered by SQLAlchemy only.
        # ``channel || ''``, not ``channel``: given a usable channel, SQLite seeks
        # ``(channel, id)`` and then walks every message of the channel from the first, the
        # ended ones too (346 ms a claim behind 20,000 delivered messages, measured).
        channel = _m.channel.concat("")
        in_channels = channel.in_([bindparam(f"ch{i}", c) for i, c in enumerate(channels)])
    after = bindparam("after", type_=BigInteger())
    limit = bindparam("limit", type_=BigInteger())
    now = bindparam("now", type_=_m.next_attempt_at.type)
    # True (1 on SQLite) for a retry not due yet; NULL is read as False.
    waiting = (_m.state == _RETRYING) & (_m.next_attempt_at > now)
    columns = (_m.id, _m.channel, _m.patient_key)
    if dialect != "sqlite":
        return (
            select(*columns, waiting.label("waiting"))
            .where(_PENDING, _m.id > after, in_channels, *where)
            .order_by(_m.id)
            .limit(limit)
        )
    arms = [
        select(*columns, waits.label("waiting"))
        .where(_m.state == state, _m.id > after, in_channels, *where)
        .order_by(_m.id)
        .limit(limit)
        .subquery()
        for state, waits in ((_RECEIVED, false()), (_RETRYING, waiting))
    ]
    pending = union_all(*(select(arm) for arm in arms)).subquery()
    return select(pending).order_by(pending.c.id).limit(limit)


@lru_cache(maxsize=16)
def scan_statement(dialect: str, channels: tuple[str, ...] | None) -> FastStatement:
    """The claim's scan of the next pending messages of ``channels`` (None: all)."""
    return FastStatement(_scan(dialect, channels))


def _load_statement(lock: bool) -> FastStatement:
    """The picked messages by primary key. Their state is checked on the rows read, not in
    the query: given ``state IN (...)`` too, PostgreSQL took the (state, id) index for it and
    filtered the ids, reading every heap page of the journal's pending stretch (2-6 ms a batch
    of 64 against 0.16 ms by id, EXPLAIN ANALYZE during bench/pipeline_batch.py)."""
    ids = id_binds(LOAD_IDS)
    columns = (_m.id, _m.raw, _m.charset, _m.attempts, _m.delivered_to, _m.sender, _m.state)
    query = select(*columns).where(_m.id.in_(ids))
    return FastStatement(query.with_for_update() if lock else query)


_LOAD = {False: _load_statement(False), True: _load_statement(True)}


def claim_pending(
    conn: Connection,
    now: datetime,
    limit: int | None,
    channels: Iterable[str] | None = None,
    groups: Mapping[Group, int] | None = None,
) -> list[Pending]:
    """The next messages to process, in arrival order, keeping each patient's order.

    ``limit`` messages at most (None: no limit) of ``channels`` (None: every channel): a
    channel removed from the configuration keeps its messages journaled, untouched. With
    ``groups``, only the pending messages of those groups, each up to its id, row-locked
    (PostgreSQL ``FOR UPDATE``; the caller holds the groups' advisory locks).
    """
    key = tuple(sorted(channels)) if channels is not None else None
    if key == () or limit == 0 or (groups is not None and not groups):
        return []
    if groups is None:
        picked = _next(conn, now, limit or WHOLE_GROUP, key)
    else:
        picked = _of_groups(conn, now, key, groups)
    if limit is not None:
        picked = picked[:limit]
    return _load(conn, picked, lock=groups is not None)


def _next(
    conn: Connection, now: datetime, limit: int, channels: tuple[str, ...] | None
) -> list[Scanned]:
    scan = scan_statement(conn.dialect.name, channels)
    picked: list[Scanned] = []
    blocked: set[Group] = set()
    after = 0
    with _ordered_scan(conn):
        while True:  # held-back rows must not hide other patients' messages behind them
            page = [
                Scanned._make(r)
                for r in scan.execute(conn, {"after": after, "limit": limit, "now": now})
            ]
            picked.extend(_free(page, blocked))
            if len(page) < limit or len(picked) >= limit:
                return picked
            after = page[-1].id


@contextmanager
def _ordered_scan(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, the scan without bitmap scans: it then reads the index of pending
    messages in id order and stops at the limit. Estimating few pending rows (statistics older
    than a burst of intake), the planner chose a bitmap scan and a sort instead, which reads
    every entry of that index, the dead ones of delivered messages too, and their heap pages:
    14 ms a batch after a burst, 1.2-2 ms in id order (EXPLAIN ANALYZE, bench/pipeline_batch)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    raw(conn, "SET LOCAL enable_bitmapscan = off")
    yield  # a failure aborts the transaction, and its rollback undoes the setting
    raw(conn, "SET LOCAL enable_bitmapscan TO DEFAULT")


def _of_groups(
    conn: Connection, now: datetime, channels: tuple[str, ...] | None, upto: Mapping[Group, int]
) -> list[Scanned]:
    keyed = [g for g in upto if g[0]]
    singles = [int(g[1][1:]) for g in upto if not g[0]]
    in_groups = or_(
        tuple_(_m.channel, _m.patient_key).in_(keyed) if keyed else false(),
        _m.id.in_(singles) if singles else false(),
    )
    query = _scan(conn.dialect.name, channels, _m.id <= max(upto.values()), in_groups)
    params = {"now": now, "after": 0, "limit": WHOLE_GROUP}
    rows = [Scanned._make(r) for r in conn.execute(query, params)]
    return list(_free([r for r in rows if r.id <= upto.get(r.group, 0)], set()))


def _free(rows: list[Scanned], blocked: set[Group]) -> Iterable[Scanned]:
    """The rows that may go now: a waiting retry holds back its group from there on."""
    for row in rows:
        group = row.group
        if row.waiting:
            blocked.add(group)
        elif group not in blocked:
            yield row


def _load(conn: Connection, picked: list[Scanned], lock: bool) -> list[Pending]:
    load = _LOAD[lock]
    found: dict[int, Loaded] = {}
    for params in id_chunks([row.id for row in picked], LOAD_IDS):
        found.update((r[0], Loaded._make(r)) for r in load.execute(conn, params))
    batch = []
    for row in picked:
        loaded = found.get(row.id)
        if loaded is None or loaded.state not in PENDING_STATES:  # ended meanwhile (a discard)
            continue
        done_to = set(filter(None, loaded.delivered_to.split(",")))
        batch.append(
            Pending(
                row.id,
                row.channel,
                loaded.raw,
                loaded.charset,
                row.patient_key,
                loaded.attempts,
                done_to,
                sender=loaded.sender or "",
            )
        )
    return batch


def stale_or_due(
    conn: Connection, now: datetime, stale_before: datetime, limit: int, channels: Collection[str]
) -> list[GroupStart]:
    """The groups (first message id, channel, patient key) that no work item will bring:
    with a retry that fell due, or a received message older than ``stale_before`` (its item
    was lost with the broker, or an operator replayed it). One row per group, so that a
    patient held up behind a retry cannot fill the ``limit``.

    The states are literals, as in the claim's scan, and the pending states are said once
    more as the partial index's very predicate: a generic plan (PostgreSQL's, once it has run
    the prepared statement a few times) then still reads the index of pending messages, where
    with the states bound it read the whole journal, the ended messages too (a sequential scan)."""
    in_channels = _m.channel.in_(list(channels))
    due = (_m.state == _RETRYING) & (_m.next_attempt_at <= now)
    stale = (_m.state == _RECEIVED) & (_m.updated_at < stale_before)
    pending = or_(due, stale) & _PENDING
    first = func.min(_m.id)
    keyed = (
        select(first.label("id"), _m.channel, _m.patient_key)
        .where(pending, in_channels, _m.patient_key.is_not(None))
        .group_by(_m.channel, _m.patient_key)
        .order_by(first)
        .limit(limit)
    )
    alone = (
        select(_m.id, _m.channel, _m.patient_key)
        .where(pending, in_channels, _m.patient_key.is_(None))
        .order_by(_m.id)
        .limit(limit)
    )
    return [GroupStart._make(r) for query in (keyed, alone) for r in conn.execute(query)]
