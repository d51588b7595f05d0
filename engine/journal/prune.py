"""Journal pruning: delivered, filtered and discarded messages past their retention leave the
journal, in batches of short transactions, their child rows first.

Never pruned: dead letters, held messages and messages in review (not in an end state the
pipeline is done with), a message whose business acknowledgement (outbox) is not sent yet, and
a message an open identity review names (resolving it writes an event on it).

A message goes once it was received *and* last changed longer ago than the retention. A
channel whose duplicate policy has a ``reuse_window_seconds`` longer than the retention keeps
its messages that long: a resend inside the window is still answered as the original was. Past
the retention a resend is no longer recognised (with the default window, "forever", the
retention is the window in practice).

What a journal row's id is kept by elsewhere stays: the record store's rows name the message
that brought them (``message_id``, no foreign key: provenance, not a link to follow) and the
audit trail is append-only.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from engine.journal.message_tables import State, events, holds, messages, outbox
from engine.journal.transformed import transformed
from engine.store.identity_reviews import open_review_names

_m = messages.c
#: End states the pipeline is done with. Dead letters, held and review are never pruned.
PRUNED_STATES = (State.DELIVERED, State.FILTERED, State.DISCARDED)
#: Child tables (foreign keys to journal_messages.id), deleted before their messages.
CHILDREN = {"events": events, "holds": holds, "outbox": outbox, "transformed": transformed}


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Messages received and last changed before ``default`` go; the channels named in
    ``channels`` keep theirs until their own (earlier) cutoff."""

    default: datetime
    channels: Mapping[str, datetime] = field(default_factory=dict)


def cutoffs(
    now: datetime, days: float, reuse_windows: Mapping[str, float | None] | None = None
) -> Cutoffs:
    """The cutoffs for a retention of ``days``; ``reuse_windows``: each channel's duplicate
    reuse window in seconds (None: no window of its own)."""
    retention = timedelta(days=days)
    longer = {
        name: now - timedelta(seconds=seconds)
        for name, seconds in (reuse_windows or {}).items()
        if seconds is not None and timedelta(seconds=seconds) > retention
    }
    return Cutoffs(now - retention, longer)


def _older(cut: datetime) -> ColumnElement[bool]:
    return and_(_m.received_at < cut, _m.updated_at < cut)


def _due(cut: Cutoffs) -> ColumnElement[bool]:
    """The rows that may go (the time range first: ``ix_journal_messages_received_at``)."""
    by_age = (
        or_(
            and_(_m.channel.not_in(list(cut.channels)), _older(cut.default)),
            *(and_(_m.channel == name, _older(at)) for name, at in cut.channels.items()),
        )
        if cut.channels
        else _older(cut.default)
    )
    o = outbox.c
    unsent = exists().where(o.message_id == _m.id, o.sent_at.is_(None))
    return and_(by_age, _m.state.in_(PRUNED_STATES), ~unsent, ~open_review_names(_m.id))


def prune_batch(conn: Connection, cut: Cutoffs, limit: int) -> Counter[str]:
    """Delete up to ``limit`` due messages and their child rows in the caller's transaction;
    the rows deleted by table (``messages``, ``events``...). PostgreSQL: rows another
    transaction holds are skipped (they are not due for long)."""
    query = select(_m.id).where(_due(cut)).order_by(_m.received_at).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(conn.execute(query).scalars())
    counts: Counter[str] = Counter()
    if not ids:
        return counts
    for name, table in CHILDREN.items():
        gone = conn.execute(delete(table).where(table.c.message_id.in_(ids))).rowcount
        if gone:
            counts[name] = gone
    # The state again: under SQLite's write lock (or PostgreSQL's row locks) nothing moved it.
    counts["messages"] = conn.execute(
        delete(messages).where(_m.id.in_(ids), _m.state.in_(PRUNED_STATES))
    ).rowcount
    return counts


@dataclass(frozen=True, slots=True)
class Pruned:
    messages: int = 0
    batches: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def prune(
    db: Engine,
    cut: Cutoffs,
    batch: int,
    stop: threading.Event | None = None,
    pause_seconds: float = 0.02,
) -> Pruned:
    """Prune every due message, ``batch`` per transaction, resting ``pause_seconds`` between
    transactions so that intake and the pipeline get the database (SQLite has one writer);
    until ``stop`` is set (the rest waits for the next run)."""
    started = time.monotonic()
    rows: Counter[str] = Counter()
    batches = 0
    while stop is None or not stop.is_set():
        with db.begin() as conn:
            done = prune_batch(conn, cut, batch)
        if not done:
            break
        batches += 1
        rows.update(done)
        if done["messages"] < batch:
            break
        if pause_seconds > 0:
            time.sleep(pause_seconds)
    return Pruned(rows["messages"], batches, dict(rows), round(time.monotonic() - started, 3))


def would_prune(conn: Connection, cut: Cutoffs) -> dict[str, Any]:
    """What :func:`prune` would delete now (a dry run): messages by channel and state, and
    their child rows by table."""
    due = select(_m.id).where(_due(cut)).scalar_subquery()
    by = conn.execute(
        select(_m.channel, _m.state, func.count())
        .where(_due(cut))
        .group_by(_m.channel, _m.state)
        .order_by(_m.channel, _m.state)
    ).all()
    children = {
        name: int(
            conn.execute(
                select(func.count()).select_from(table).where(table.c.message_id.in_(due))
            ).scalar_one()
        )
        for name, table in CHILDREN.items()
    }
    return {
        "messages": sum(int(n) for _, _, n in by),
        "by_channel_state": [
            {"channel": str(c), "state": str(s), "messages": int(n)} for c, s, n in by
        ],
        "rows": children,
    }
