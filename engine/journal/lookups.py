"""Read side of the journal and operator actions: stats, dead letters, replay, discard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from engine.fastsql import FastStatement
from engine.journal.journal import utcnow
from engine.journal.message_tables import PENDING_STATES, State, events, holds, messages

#: Dead letters kept only in part (their head), which replay must refuse.
NOT_REPLAYABLE = "message_too_large"

#: Columns shown in listings (never the raw bytes).
SUMMARY = (
    messages.c.id,
    messages.c.channel,
    messages.c.received_at,
    messages.c.updated_at,
    messages.c.sender_app,
    messages.c.sender_facility,
    messages.c.control_id,
    messages.c.message_type,
    messages.c.trigger,
    messages.c.patient_key,
    messages.c.state,
    messages.c.attempts,
    messages.c.ack_code,
    messages.c.size,
    messages.c.error_stage,
    messages.c.error_code,
    messages.c.error_reason,
)


@dataclass(frozen=True, slots=True)
class ChannelStats:
    channel: str
    received: int
    in_flight: int
    filtered: int
    delivered: int
    dead_lettered: int
    discarded: int
    held: int  # waiting for their patient (902)
    review: int  # waiting for an identity decision (903-905)


def stats(conn: Connection, channels: Sequence[str] = ()) -> list[ChannelStats]:
    """Per channel: messages received in all, and how many are in each state now; the
    ``channels`` given (those configured) are listed even without any message."""
    rows = conn.execute(
        select(messages.c.channel, messages.c.state, func.count())
        .group_by(messages.c.channel, messages.c.state)
        .order_by(messages.c.channel)
    ).all()
    by_channel: dict[str, dict[str, int]] = {name: {} for name in channels}
    for channel, state, count in rows:
        by_channel.setdefault(channel, {})[state] = count
    return [
        ChannelStats(
            channel=ch,
            received=sum(c.values()),
            in_flight=sum(c.get(s, 0) for s in PENDING_STATES),
            filtered=c.get(State.FILTERED, 0),
            delivered=c.get(State.DELIVERED, 0),
            dead_lettered=c.get(State.DEAD_LETTERED, 0),
            discarded=c.get(State.DISCARDED, 0),
            held=c.get(State.HELD, 0),
            review=c.get(State.REVIEW, 0),
        )
        for ch, c in sorted(by_channel.items())
    ]


def dead_letters(
    conn: Connection,
    channel: str | None = None,
    code: str | None = None,
    limit: int = 1000,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Dead letters, oldest first; ``since``: dead-lettered at or after that time."""
    query = select(*SUMMARY).where(*_dead_letter_filter(channel, code, since))
    return [dict(r._mapping) for r in conn.execute(query.order_by(messages.c.id).limit(limit))]


def count_dead_letters(
    conn: Connection,
    channel: str | None = None,
    code: str | None = None,
    since: datetime | None = None,
) -> int:
    query = select(func.count()).where(*_dead_letter_filter(channel, code, since))
    return int(conn.execute(query).scalar_one())


def _dead_letter_filter(
    channel: str | None, code: str | None, since: datetime | None
) -> list[ColumnElement[bool]]:
    m = messages.c
    where = [m.state == State.DEAD_LETTERED]
    if channel:
        where.append(m.channel == channel)
    if code:
        where.append(m.error_code == code)
    if since is not None:
        where.append(m.updated_at >= since)
    return where


def known_channel(conn: Connection, channel: str) -> bool:
    """Whether the journal holds any message of ``channel``."""
    found = conn.execute(select(messages.c.id).where(messages.c.channel == channel).limit(1))
    return found.first() is not None


def states(conn: Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    """State, attempts and error of each message (for an operator waiting on a replay)."""
    m = messages.c
    query = select(m.id, m.channel, m.state, m.attempts, m.error_code, m.error_reason)
    rows = conn.execute(query.where(m.id.in_(list(ids))).order_by(m.id))
    return [dict(r._mapping) for r in rows]


def message(conn: Connection, message_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(
            *SUMMARY, messages.c.raw, messages.c.charset, messages.c.peer, messages.c.sender
        ).where(messages.c.id == message_id)
    ).first()
    return None if row is None else dict(row._mapping)


_SENDER = FastStatement(select(messages.c.sender).where(messages.c.id == bindparam("id_")))


def sender_of(conn: Connection, message_id: int) -> str:
    """The sender identity journaled with a message (kept as it was through replays); ``""``
    for a message journaled before identities were recorded."""
    rows = _SENDER.execute(conn, {"id_": message_id})
    return str(rows[0][0] or "") if rows else ""


def channel_of(conn: Connection, message_id: int) -> str | None:
    """The channel a message was journaled on; None when the journal no longer has it."""
    channel: str | None = conn.execute(
        select(messages.c.channel).where(messages.c.id == message_id)
    ).scalar()
    return channel


def history(conn: Connection, message_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(events).where(events.c.message_id == message_id).order_by(events.c.id)
    )
    return [dict(r._mapping) for r in rows]


def find(
    conn: Connection, term: str, limit: int = 100, also: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """Messages whose id, control id (MSH-10) or patient key is ``term``, and the messages
    ``also`` names (those of the patient ``term`` names, found by
    :func:`engine.journal.search.matching_ids`)."""
    conditions = [messages.c.control_id == term, messages.c.patient_key == term]
    if term.isdigit() and not term.startswith("0"):  # 000003 is a local id, not message 3
        conditions.append(messages.c.id == int(term))
    if also:
        conditions.append(messages.c.id.in_(list(also)))
    rows = conn.execute(
        select(*SUMMARY).where(or_(*conditions)).order_by(messages.c.id).limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def replay(
    conn: Connection, ids: Sequence[int], actor: str, now: datetime | None = None
) -> list[int]:
    """Put dead letters back in the pipeline. Messages no longer dead-lettered are skipped, so
    replaying twice applies once; so are truncated oversized messages. Returns the ids
    actually requeued."""
    now = now or utcnow()
    requeued = [
        r[0]
        for r in conn.execute(
            update(messages)
            .where(messages.c.id.in_(list(ids)), messages.c.state == State.DEAD_LETTERED)
            # An oversized message was kept truncated: replaying it would apply half a message.
            .where(or_(messages.c.error_code.is_(None), messages.c.error_code != NOT_REPLAYABLE))
            .values(state=State.RECEIVED, updated_at=now, next_attempt_at=None, attempts=0)
            .returning(messages.c.id)
        )
    ]
    _log_action(conn, requeued, now, State.RECEIVED, "replayed", "operator replay", actor)
    conn.commit()
    return sorted(requeued)


def select_dead_letters(conn: Connection, channel: str, code: str | None) -> list[int]:
    return [r["id"] for r in dead_letters(conn, channel, code, limit=1_000_000)]


def discard(conn: Connection, message_id: int, reason: str, actor: str) -> bool:
    """End a dead letter, or a message held for a patient that will never be known, for good
    (kept in the journal, with who and why)."""
    now = utcnow()
    done = conn.execute(
        update(messages)
        .where(
            messages.c.id == message_id,
            messages.c.state.in_((State.DEAD_LETTERED, State.HELD)),
        )
        .values(state=State.DISCARDED, updated_at=now)
    ).rowcount
    if done:
        conn.execute(delete(holds).where(holds.c.message_id == message_id))
    _log_action(
        conn, [message_id] if done else [], now, State.DISCARDED, "discarded", reason, actor
    )
    conn.commit()
    return bool(done)


def end_review(
    conn: Connection,
    message_id: int,
    state: State,
    code: str,
    reason: str,
    actor: str,
    now: datetime,
) -> bool:
    """An operator's identity decision on a message, in the caller's transaction: a message in
    ``review`` goes to ``state`` (its attempts reset); one no longer there (filed already)
    keeps its state, which the operator event (``code``, who, why) records. Returns whether
    the message was in review."""
    waiting = conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.state == State.REVIEW)
        .values(state=state, updated_at=now, next_attempt_at=None, attempts=0)
    ).rowcount
    recorded: Any = state
    if not waiting:
        recorded = conn.execute(
            select(messages.c.state).where(messages.c.id == message_id)
        ).scalar()
    _log_action(conn, [message_id], now, recorded, code, reason, actor)
    return bool(waiting)


def _log_action(
    conn: Connection,
    ids: list[int],
    now: datetime,
    state: str,
    code: str,
    reason: str,
    actor: str,
) -> None:
    if ids:
        conn.execute(
            insert(events),
            [
                {
                    "message_id": i,
                    "at": now,
                    "state": state,
                    "attempt": 0,
                    "stage": "operator",
                    "code": code,
                    "reason": reason,
                    "actor": actor,
                }
                for i in ids
            ],
        )
