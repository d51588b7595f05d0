"""Which journaled messages the pipeline takes next.

Three small index seeks on ``(state, id)`` rather than one query with an ``OR`` and a
correlated ``NOT EXISTS``, which SQLite answers by walking the whole journal in id order: the
claim must cost the same with ten or ten million delivered messages behind it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    bindparam,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.sql import ColumnElement

from engine.fastsql import FastStatement
from engine.journal.message_tables import State, messages

_m = messages.c
_PENDING = (_m.id, _m.channel, _m.raw, _m.charset, _m.patient_key, _m.attempts, _m.delivered_to)
Row = tuple[Any, ...]


# The states as literals in the SQL text, not binds: PostgreSQL runs these statements prepared
# (psycopg prepares a statement from its fifth run), and a generic plan for ``state = $1``
# cannot use the partial index ix_journal_messages_pending (``state IN ('received',
# 'retrying')``, migration 0017), which keeps the claim off the dead index entries every
# update to delivered leaves behind until VACUUM, and gives the rows in id order.
_RECEIVED: ColumnElement[str] = literal_column(f"'{State.RECEIVED.value}'", String())
_RETRYING: ColumnElement[str] = literal_column(f"'{State.RETRYING.value}'", String())


@lru_cache(maxsize=8)
def _statements(channels: tuple[str, ...] | None) -> tuple[FastStatement, ...]:
    in_channels: ColumnElement[bool] = true()
    if channels is not None:
        # One bind per channel: an IN of a tuple is "expanding", rendered by SQLAlchemy only.
        # ``channel || ''``, not ``channel``: given a usable channel, SQLite seeks
        # ``(channel, id)`` and then walks every message of the channel from the first, the
        # delivered ones too (346 ms a claim behind 20,000 delivered messages, measured);
        # an expression leaves it the ``(state, id)`` seek.
        channel = _m.channel.concat("")
        in_channels = channel.in_([bindparam(f"ch{i}", c) for i, c in enumerate(channels)])
    now = bindparam("now", type_=_m.next_attempt_at.type)
    limit = bindparam("limit", type_=Integer())
    received = (
        select(*_PENDING)
        .where(_m.state == _RECEIVED, _m.id > bindparam("after"), in_channels)
        .order_by(_m.id)
        .limit(limit)
    )
    due = (
        select(*_PENDING)
        .where(_m.state == _RETRYING, _m.next_attempt_at <= now, in_channels)
        .order_by(_m.id)
        .limit(limit)
    )
    waiting = select(_m.id, _m.channel, _m.patient_key).where(
        _m.state == State.RETRYING, _m.next_attempt_at > now, _m.patient_key.is_not(None)
    )
    return FastStatement(received), FastStatement(due), FastStatement(waiting)


def claim_rows(
    conn: Connection, now: datetime, limit: int, channels: tuple[str, ...] | None
) -> list[Row]:
    """Up to ``limit`` due messages in arrival order. A message waits while an earlier message
    of the same channel and patient waits for its retry (contract 4); others go on."""
    received_q, due_q, waiting_q = _statements(channels)
    first_waiting: dict[tuple[str, str], int] = {}
    for ident, channel, key in waiting_q.execute(conn, {"now": now}):
        first_waiting[(channel, key)] = min(ident, first_waiting.get((channel, key), ident))

    def free(row: Row) -> bool:
        earliest = first_waiting.get((row[1], row[4]))
        return earliest is None or earliest > row[0]

    picked = [r for r in due_q.execute(conn, {"now": now, "limit": limit}) if free(r)]
    after = 0
    while True:  # held-back rows must not hide other patients' messages behind them
        page = received_q.execute(conn, {"after": after, "limit": limit})
        picked.extend(r for r in page if free(r))
        if len(page) < limit or len(picked) >= limit:
            break
        after = page[-1][0]
    picked.sort(key=lambda r: r[0])
    return picked[:limit]


#: A unit of order: (channel, patient key), or ("", "#<message id>") for a message without one.
Group = tuple[str, str]
_CLAIM_GROUP = (*_PENDING, _m.state, _m.next_attempt_at)


def claim_groups(conn: Connection, upto: dict[Group, int], channels: Iterable[str]) -> list[Row]:
    """The pending messages (received or retrying) of each group up to its id, in arrival
    order, row-locked (``FOR UPDATE``: PostgreSQL; the caller holds the groups' advisory
    locks), of the ``channels`` this engine runs. Each row ends with its state and next
    attempt time."""
    keyed = [g for g in upto if g[0]]
    singles = [int(g[1][1:]) for g in upto if not g[0]]
    in_groups = or_(
        tuple_(_m.channel, _m.patient_key).in_(keyed) if keyed else false(),
        _m.id.in_(singles) if singles else false(),
    )
    query = (
        select(*_CLAIM_GROUP)
        .where(
            _m.state.in_([State.RECEIVED, State.RETRYING]),
            _m.id <= max(upto.values()),
            _m.channel.in_(list(channels)),
            in_groups,
        )
        .order_by(_m.id)
        .with_for_update()
    )
    return [r for r in conn.execute(query) if r[0] <= upto.get(group_of(r[0], r[1], r[4]), 0)]


def group_of(message_id: int, channel: str, patient_key: str | None) -> Group:
    """The unit of order of a message (contract 4)."""
    return (channel, patient_key) if patient_key else ("", f"#{message_id}")


#: A group's "up to" that takes all of its pending messages.
WHOLE_GROUP = 2**62


def stale_or_due(
    conn: Connection, now: datetime, stale_before: datetime, limit: int, channels: Iterable[str]
) -> list[tuple[int, str, str | None]]:
    """The groups (first message id, channel, patient key) that no work item will bring:
    with a retry that fell due, or a received message older than ``stale_before`` (its item
    was lost with the broker, or an operator replayed it). One row per group, so that a
    patient held up behind a retry cannot fill the ``limit``."""
    in_channels = _m.channel.in_(list(channels))
    due = (_m.state == State.RETRYING) & (_m.next_attempt_at <= now)
    stale = (_m.state == State.RECEIVED) & (_m.updated_at < stale_before)
    first = func.min(_m.id)
    keyed = (
        select(first, _m.channel, _m.patient_key)
        .where(or_(due, stale), in_channels, _m.patient_key.is_not(None))
        .group_by(_m.channel, _m.patient_key)
        .order_by(first)
        .limit(limit)
    )
    alone = (
        select(_m.id, _m.channel, _m.patient_key)
        .where(or_(due, stale), in_channels, _m.patient_key.is_(None))
        .order_by(_m.id)
        .limit(limit)
    )
    rows = [*conn.execute(keyed), *conn.execute(alone)]
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]
