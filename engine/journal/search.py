"""Message search for the operations API and console: filters, keyset pagination, and the
indexes that keep each filter fast on a journal of millions of messages (migration 0010).

Results come newest first (by id). A time range becomes an id range first (two index seeks on
``received_at``): the journal assigns ids in arrival order, so every other filter can then use
its own ``(column, id)`` index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Index, Select, and_, func, or_, select

from engine.journal.message_tables import holds, messages

_m = messages.c

# Declared here, next to the queries they serve; they belong to journal_messages.
INDEXES = (
    Index("ix_journal_messages_channel_id", _m.channel, _m.id),
    Index("ix_journal_messages_channel_state_received_at", _m.channel, _m.state, _m.received_at),
    Index("ix_journal_messages_received_at", _m.received_at),
    Index("ix_journal_messages_message_type_id", _m.message_type, _m.id),
    Index("ix_journal_messages_sender_id", _m.sender, _m.id),
)

#: Listing columns: metadata, errors and the proven sender, never the raw bytes. (Not
#: queries.SUMMARY: queries builds on this module, which must not import it back.)
COLUMNS = tuple(
    c
    for c in messages.c
    if c.name not in ("raw", "content_hash", "properties", "delivered_to", "charset", "peer")
    and c.name not in ("next_attempt_at", "error_class")
)


@dataclass(frozen=True, slots=True)
class PatientKeys:
    """A patient as the journal knows it: ``patient_key`` values (``value^authority``), key
    prefixes (``value^`` for a local id given without its facility), and hold keys
    (``ins:<matricule>``) of messages held for a patient the store does not know yet."""

    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    hold_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageFilter:
    channel: str | None = None
    state: str | None = None
    message_type: str | None = None  # "ORU" or "ORU^R01"
    control_id: str | None = None
    sender: str | None = None
    error_code: str | None = None
    batch_id: str | None = None  # the HL7 v2 batch the messages came in
    since: datetime | None = None
    until: datetime | None = None
    patient: PatientKeys | None = None


def search(
    conn: Connection, f: MessageFilter, limit: int = 50, before_id: int | None = None
) -> list[dict[str, Any]]:
    """One page of messages matching ``f``, newest first; the next page starts before the
    last id of this one."""
    query = where(conn, select(*COLUMNS), f)
    if query is None:
        return []
    if before_id is not None:
        query = query.where(_m.id < before_id)
    rows = conn.execute(query.order_by(_m.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]


def matching_ids(conn: Connection, f: MessageFilter, limit: int) -> list[int]:
    """Ids of every message matching ``f`` (at most ``limit``), oldest first."""
    query = where(conn, select(_m.id), f)
    if query is None:
        return []
    return list(conn.execute(query.order_by(_m.id).limit(limit)).scalars())


def count(conn: Connection, f: MessageFilter) -> int:
    query = where(conn, select(func.count()).select_from(messages), f)
    return 0 if query is None else int(conn.execute(query).scalar_one())


def where(conn: Connection, query: Select[Any], f: MessageFilter) -> Select[Any] | None:
    """``query`` narrowed to ``f``; None when nothing can match (an empty time range)."""
    conditions: list[Any] = []
    for column, value in (
        (_m.channel, f.channel),
        (_m.state, f.state),
        (_m.control_id, f.control_id),
        (_m.sender, f.sender),
        (_m.error_code, f.error_code),
        (_m.batch_id, f.batch_id),
    ):
        if value:
            conditions.append(column == value)
    if f.message_type:
        kind, _, trigger = f.message_type.partition("^")
        conditions.append(_m.message_type == kind)
        if trigger and trigger != "*":
            conditions.append(_m.trigger == trigger)
    if f.patient is not None:
        conditions.append(_patient_condition(f.patient))
    if f.since is not None or f.until is not None:
        bounds = id_bounds(conn, f.since, f.until)
        if bounds is None:
            return None
        conditions += [_m.id >= bounds[0], _m.id <= bounds[1]]
        if f.since is not None:
            conditions.append(_m.received_at >= f.since)
        if f.until is not None:
            conditions.append(_m.received_at < f.until)
    return query.where(and_(*conditions)) if conditions else query


def id_bounds(
    conn: Connection, since: datetime | None, until: datetime | None
) -> tuple[int, int] | None:
    """The first and last ids received in ``[since, until)``; None when none was."""
    first = select(_m.id).order_by(_m.received_at, _m.id).limit(1)
    last = select(_m.id).order_by(_m.received_at.desc(), _m.id.desc()).limit(1)
    if since is not None:
        first, last = first.where(_m.received_at >= since), last.where(_m.received_at >= since)
    if until is not None:
        first, last = first.where(_m.received_at < until), last.where(_m.received_at < until)
    lo, hi = conn.execute(first).scalar(), conn.execute(last).scalar()
    return None if lo is None or hi is None else (int(lo), int(hi))


def first_id_since(conn: Connection, since: datetime) -> int | None:
    """The first id received at or after ``since`` (None: nothing since)."""
    query = select(_m.id).where(_m.received_at >= since).order_by(_m.received_at, _m.id)
    found = conn.execute(query.limit(1)).scalar()
    return None if found is None else int(found)


def _patient_condition(p: PatientKeys) -> Any:
    conditions: list[Any] = []
    if p.keys:
        conditions.append(_m.patient_key.in_(p.keys))
    for prefix in p.prefixes:
        # A range rather than LIKE: an index range scan on both databases, no escaping needed.
        conditions.append(and_(_m.patient_key >= prefix, _m.patient_key < _successor(prefix)))
    if p.hold_keys:
        held = select(holds.c.message_id).where(holds.c.key.in_(p.hold_keys))
        conditions.append(_m.id.in_(held))
    return or_(*conditions) if conditions else _m.id.is_(None)


def _successor(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
