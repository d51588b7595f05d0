"""Write side of the journal: group-committed intake and the pipeline's end states (the claim
is :mod:`engine.journal.claim`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, String, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Engine

from engine.fastsql import FastStatement, id_binds, id_chunks, insert_into
from engine.journal.message_tables import State, events, messages
from engine.journal.records import Appended, DedupKey, NewMessage, Pending, content_digest

_INSERT_MESSAGE = insert_into(messages, returning=messages.c.id)
#: The same INSERT without RETURNING, for one ``executemany`` per group commit on SQLite.
_INSERT_MANY = insert_into(messages)
_MAX_ID = FastStatement(select(func.max(messages.c.id)))
_LAST_ROWID = FastStatement(select(func.last_insert_rowid()))

#: Control ids looked up per query (unused places are NULL, which matches nothing).
LOOKUP_IDS = 16
_FIND_CONTROL_IDS = FastStatement(
    select(
        messages.c.id,
        messages.c.channel,
        messages.c.sender_app,
        messages.c.sender_facility,
        messages.c.control_id,
        messages.c.content_hash,
        messages.c.ack_code,
        messages.c.error_code,
        messages.c.error_reason,
        messages.c.received_at,
    ).where(or_(*(messages.c.control_id == bindparam(f"c{i}") for i in range(LOOKUP_IDS))))
)

#: Messages marked delivered per statement (unused places are NULL).
MARK_IDS = 64
_MARK_DELIVERED = FastStatement(
    update(messages)
    .where(messages.c.id.in_(id_binds(MARK_IDS)))
    .values(
        state=State.DELIVERED,
        updated_at=bindparam("updated_at"),
        attempts=messages.c.attempts + 1,
        next_attempt_at=None,
        error_stage=None,
        error_code=None,
        error_class=None,
        error_reason=None,
    )
)


_NOT_ATTEMPTS = frozenset({State.FILTERED, State.HELD, State.REVIEW})


def utcnow() -> datetime:
    return datetime.now(UTC)


class Journal:
    """Durable record of every message. Thread-safe: each caller passes or gets a connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine  # the database this journal lives in (callers pass connections)

    # -- intake ---------------------------------------------------------------------------

    def append(self, conn: Connection, batch: Sequence[NewMessage]) -> list[Appended]:
        """Store a batch in one transaction (group commit); resent messages are not stored again.

        A message whose sender and MSH-10 are already journaled for the channel is a resend: it
        gets the original's id and ACK code back (contract 3). If its content (but MSH-7, and
        compared as the channel's duplicate policy says) differs, the control id was reused:
        the message is kept as a dead letter and refused, unless the policy takes it as new.
        """
        now = utcnow()
        for m in batch:
            _fit(m)
        keys = [m.dedup_key() for m in batch]
        known = self._known(conn, batch)
        results: list[Appended | None] = [None] * len(batch)
        fresh: list[tuple[int, NewMessage]] = []
        fresh_keys: list[DedupKey | None] = []
        in_batch: dict[DedupKey, int] = {}
        senders: dict[tuple[str, str | None, str | None, str], int | None] = {
            k[:4]: rows[-1][1].id for k, rows in known.items()
        }
        for i, (msg, key) in enumerate(zip(batch, keys, strict=True)):
            original = _resend_of(msg, key, known)
            if original is not None:
                results[i] = original
            elif key is not None and key in in_batch:
                results[i] = Appended(-1 - in_batch[key], True, msg.ack_code)
            else:
                if (
                    key is not None
                    and key[:4] in senders
                    and not msg.reused_is_new(_last_used(known, key), now)
                ):
                    msg.reject_reused_control_id(senders[key[:4]])
                elif key is not None:
                    in_batch[key] = len(fresh)
                    senders.setdefault(key[:4], None)
                fresh.append((i, msg))
                fresh_keys.append(key)
        if fresh:
            rows = [_row(m, k, now) for (_, m), k in zip(fresh, fresh_keys, strict=True)]
            ids = _insert(conn, rows)
            for (i, msg), ident in zip(fresh, ids, strict=True):
                results[i] = Appended(ident, False, msg.ack_code, msg.error_code, msg.error_reason)
            error_rows = [
                _event(ident, now, msg.state, 0, msg.error_stage, msg.error_code, msg.error_reason)
                for (_, msg), ident in zip(fresh, ids, strict=True)
                if msg.error_code
            ]
            if error_rows:
                conn.execute(insert(events), error_rows)
        conn.commit()
        return [_resolve(r, results, fresh) for r in results]

    def _known(self, conn: Connection, batch: Sequence[NewMessage]) -> Known:
        """Journaled messages with the batch's control ids (one indexed lookup per id), by
        sender and control id, oldest first: (digest, answer, received at) each.

        A resend is answered as its original was at intake: the code and reason intake gave,
        never what the pipeline wrote on the row since (a held message's "no patient")."""
        known: Known = {}
        # One indexed lookup for up to LOOKUP_IDS control ids (``=`` ORed: SQLite reads it as
        # an IN list on the index, PostgreSQL as a bitmap OR), not one query per id.
        wanted = sorted({m.control_id for m in batch if m.control_id})
        found: list[tuple[Any, ...]] = []
        for start in range(0, len(wanted), LOOKUP_IDS):
            chunk = wanted[start : start + LOOKUP_IDS]
            params = {f"c{i}": chunk[i] if i < len(chunk) else None for i in range(LOOKUP_IDS)}
            found.extend(_FIND_CONTROL_IDS.execute(conn, params))
        for r in found:
            refused = r[6] != "AA"
            answer = Appended(
                r[0], True, r[6], r[7] if refused else None, r[8] if refused else None
            )
            received = r[9]
            if isinstance(received, str):  # SQLite through the fast path: ISO text
                received = datetime.fromisoformat(received)
            known.setdefault((r[1], r[2], r[3], r[4]), []).append((r[5], answer, received))
        for rows in known.values():
            rows.sort(key=lambda row: row[1].id)
        return known

    # -- pipeline -------------------------------------------------------------------------

    def finish(
        self,
        conn: Connection,
        msg: Pending,
        state: State,
        now: datetime,
        *,
        stage: str | None = None,
        code: str | None = None,
        error_class: str | None = None,
        reason: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Record a state change in the caller's transaction (with the store writes, if any)."""
        msg.outcome = state
        # Holding a message for its patient or an identity decision is not a failed attempt:
        # it must not use up the retries of a later transient error.
        attempts = msg.attempts + (state not in _NOT_ATTEMPTS)
        values: dict[str, object] = {
            "state": state,
            "updated_at": now,
            "attempts": attempts,
            "next_attempt_at": next_attempt_at,
            "delivered_to": ",".join(sorted(msg.delivered_to)),
        }
        if code is not None:
            values.update(
                error_stage=stage, error_code=code, error_class=error_class, error_reason=reason
            )
        conn.execute(update(messages).where(messages.c.id == msg.id).values(**values))
        if code is not None:
            conn.execute(
                insert(events), [_event(msg.id, now, state, attempts, stage, code, reason)]
            )

    def finish_many(self, conn: Connection, ids: Iterable[int], now: datetime) -> None:
        """Mark several messages delivered at once: one UPDATE for up to ``MARK_IDS`` of them
        (a pipelined executemany still sent one statement per message on PostgreSQL).

        Errors of earlier attempts are cleared from the row; they stay in ``journal_events``.
        """
        for params in id_chunks(list(ids), MARK_IDS):
            _MARK_DELIVERED.execute(conn, {**params, "updated_at": now})


def _insert(conn: Connection, rows: list[dict[str, object]]) -> list[int]:
    """Insert the rows in order; their ids.

    On PostgreSQL, one pipelined ``executemany`` with RETURNING (one round trip for the
    batch). On SQLite, multi-row INSERTs for the whole group commit
    (:meth:`~engine.fastsql.FastStatement.executemany`; one RETURNING statement per row cost
    about twice as much). The writer holds the write lock (BEGIN
    IMMEDIATE) and the id is an INTEGER PRIMARY KEY without AUTOINCREMENT, so SQLite gives
    each row the largest id plus one: the ids run from the max before to the last rowid after.
    That is checked, never assumed (past the largest possible id SQLite picks random ones)."""
    if conn.dialect.name != "sqlite" or len(rows) == 1:
        # PostgreSQL (psycopg): the rows' INSERTs pipelined, one round trip for the batch.
        return [row[0] for row in _INSERT_MESSAGE.executemany_returning(conn, rows)]
    before = _MAX_ID.execute(conn, {})[0][0] or 0
    _INSERT_MANY.executemany(conn, rows)
    last = _LAST_ROWID.execute(conn, {})[0][0]
    if last != before + len(rows):
        raise RuntimeError("journal ids were not given in sequence: batch not committed")
    return list(range(before + 1, last + 1))


#: Journaled rows by (channel, sender app, sender facility, control id): their digest, the
#: answer a resend gets, and when they were received; oldest first.
Known = dict[tuple[str, str | None, str | None, str], list[tuple[str, Appended, datetime]]]


def _resend_of(msg: NewMessage, key: DedupKey | None, known: Known) -> Appended | None:
    """The journaled message ``msg`` is a resend of, if any."""
    if key is None:
        return None
    for digest, answer, _ in known.get(key[:4], ()):
        if msg.same_content(key, digest):
            return answer
    return None


def _last_used(known: Known, key: DedupKey) -> datetime | None:
    rows = known.get(key[:4])
    if not rows:
        return None
    latest = max(row[2] for row in rows)
    return latest if latest.tzinfo is not None else latest.replace(tzinfo=UTC)


#: The length limit (None: unlimited) of every text column a NewMessage fills, from the table.
_LIMITS = {
    c.name: getattr(c.type, "length", None)
    for c in messages.c
    if isinstance(c.type, String) and c.name in {f.name for f in dataclasses.fields(NewMessage)}
}
_NAMES = tuple(_LIMITS)
_VALUES = attrgetter(*_NAMES)


def _fit(m: NewMessage) -> None:
    """Make a sender's header values storable: PostgreSQL text holds no NUL character, and a
    value longer than its column is refused there. Either would fail the commit of the whole
    batch (every sender in it would get a NAK, a broker delivery would never be acked)."""
    for name, value in zip(_NAMES, _VALUES(m), strict=True):
        if not value:
            continue
        limit = _LIMITS[name]
        if (limit is not None and len(value) > limit) or "\x00" in value:
            fitted = value.replace("\x00", "")
            setattr(m, name, fitted if limit is None else fitted[:limit])


def _row(m: NewMessage, key: DedupKey | None, now: datetime) -> dict[str, object]:
    return {
        "channel": m.channel,
        "received_at": now,
        "updated_at": now,
        "peer": m.peer,
        "sender": m.sender or None,
        "sender_app": m.sender_app,
        "sender_facility": m.sender_facility,
        "control_id": m.control_id,
        "message_type": m.message_type,
        "trigger": m.trigger,
        "patient_key": m.patient_key,
        "state": m.state,
        "attempts": 0,
        "next_attempt_at": None,
        "ack_code": m.ack_code,
        "charset": m.charset,
        "size": len(m.raw),
        "content_hash": key[4] if key else content_digest(m.raw),
        "raw": m.raw,
        "delivered_to": "",
        "error_stage": m.error_stage,
        "error_code": m.error_code,
        "error_class": m.error_class,
        "error_reason": m.error_reason,
        "properties": m.properties,
        "batch_id": m.batch_id,
        "batch_position": m.batch_position,
    }


def _event(
    message_id: int,
    at: datetime,
    state: str,
    attempt: int,
    stage: str | None,
    code: str | None,
    reason: str | None,
    actor: str | None = None,
) -> dict[str, object]:
    return {
        "message_id": message_id,
        "at": at,
        "state": state,
        "attempt": attempt,
        "stage": stage,
        "code": code,
        "reason": reason,
        "actor": actor,
    }


def _resolve(
    r: Appended | None, results: list[Appended | None], fresh: list[tuple[int, NewMessage]]
) -> Appended:
    """Resolve in-batch duplicates (encoded as negative indices into ``fresh``)."""
    assert r is not None
    if r.id >= 0:
        return r
    original = results[fresh[-1 - r.id][0]]
    assert original is not None
    return Appended(
        original.id, True, original.ack_code, original.error_code, original.error_reason
    )
