"""The identity-review queue: messages whose identity needs a human (903, 904, 905), and
notices for the identity cell (``homonym``).

A message in review is not dead: its journal state is ``review``. An operator attaches it to a
patient (it is replayed and filed under that patient, whatever the rules said) or rejects it
(it ends ``discarded``). A message already filed can be in review too (an undone merge could
not tell whose it is): attaching it moves its rows to that patient, rejecting it leaves them.
A notice blocks nothing: the cell dismisses it. Every resolution names who and why, in the
review row (and the journal for a message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from engine.errors import IdentityError
from engine.journal.message_tables import State, events, messages
from engine.store import identity_moves
from engine.store.record_core import identity_reviews, patients

_r = identity_reviews.c
OPEN, ATTACHED, REJECTED, DISMISSED = "open", "attached", "rejected", "dismissed"
#: A notice for the identity cell: not a conflict, nothing waits on it.
HOMONYM = "homonym"
_TWO_IDENTITIES = frozenset({"A40", "A47"})


def open_review(
    conn: Connection, message_id: int, channel: str, error: IdentityError, now: datetime
) -> None:
    """Queue a message for review (in the caller's transaction); a replayed message that
    fails again reuses its open review."""
    values = {
        "code": error.code,
        "reason": error.reason,
        "candidates": json.dumps(error.candidates),
    }
    done = conn.execute(
        update(identity_reviews)
        .where(_r.message_id == message_id, _r.status == OPEN, _r.code != HOMONYM)
        .values(**values)
    ).rowcount
    if not done:
        conn.execute(
            insert(identity_reviews).values(
                message_id=message_id, channel=channel, status=OPEN, created_at=now, **values
            )
        )


def open_notice(
    conn: Connection, message_id: int, patient_id: int, homonyms: list[int], now: datetime
) -> None:
    """A ``homonym`` notice: the message created ``patient_id``, whose folded strict traits
    equal those of ``homonyms`` (not the same identity: twins, namesakes or a duplicate)."""
    channel = conn.execute(select(messages.c.channel).where(messages.c.id == message_id)).scalar()
    conn.execute(
        insert(identity_reviews).values(
            message_id=message_id,
            channel=channel or "",
            status=OPEN,
            created_at=now,
            code=HOMONYM,
            reason=(
                f"a new patient has the same birth name, first given name, birth date and sex "
                f"as {len(homonyms)} other patient(s): homonyms, or a duplicate to merge"
            ),
            candidates=json.dumps([patient_id, *homonyms]),
        )
    )


def dismiss(conn: Connection, review_id: int, actor: str, reason: str, now: datetime) -> int:
    """Close a notice (seen by the cell); returns its message id."""
    row = _open(conn, review_id)
    if row["code"] != HOMONYM:
        raise ValueError(f"review {review_id} is not a notice: resolve it (--patient or --reject)")
    conn.execute(
        update(identity_reviews)
        .where(_r.id == review_id)
        .values(status=DISMISSED, resolved_at=now, resolved_by=actor, resolution_reason=reason)
    )
    return int(row["message_id"])


def attached_patient(conn: Connection, message_id: int) -> int | None:
    """The patient an operator attached this message to, if any."""
    return conn.execute(
        select(_r.patient_id)
        .where(_r.message_id == message_id, _r.status == ATTACHED)
        .order_by(_r.id.desc())
        .limit(1)
    ).scalar()


def reviews(conn: Connection, status: str | None = OPEN) -> list[dict[str, Any]]:
    query = select(identity_reviews).order_by(_r.id)
    if status:
        query = query.where(_r.status == status)
    return [_decoded(r._mapping) for r in conn.execute(query)]


def review(conn: Connection, review_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(identity_reviews).where(_r.id == review_id)).first()
    return None if row is None else _decoded(row._mapping)


@dataclass(frozen=True, slots=True)
class Resolution:
    review_id: int
    message_id: int
    status: str
    #: The message goes back into the pipeline (it was waiting); False for a filed message.
    replayed: bool = False
    #: Rows of a filed message moved to the attached patient.
    moved: int = 0


def attach(
    conn: Connection, review_id: int, patient_id: int, actor: str, reason: str, now: datetime
) -> Resolution:
    """File the message under ``patient_id``: the review closes and the message is replayed.

    A merge (A40) or an identifier change (A47) names two identities: attaching it to one
    patient has no meaning, so such a review can only be rejected (and the identities fixed
    at the source, which then resends)."""
    found = conn.execute(select(patients.c.id).where(patients.c.id == patient_id)).scalar()
    if found is None:
        raise LookupError(f"no patient {patient_id} in the store")
    row = review(conn, review_id)
    trigger = None
    if row is not None:
        trigger = conn.execute(
            select(messages.c.trigger).where(messages.c.id == row["message_id"])
        ).scalar()
    if trigger in _TWO_IDENTITIES:
        raise ValueError(f"an ADT^{trigger} names two identities: it can only be rejected")
    done = _close(conn, review_id, ATTACHED, State.RECEIVED, actor, reason, now, patient_id)
    if done.replayed or row is None:
        return done
    # A filed message (after an undone merge): its rows move to the chosen patient.
    others = [p for p in row["candidates"] if p != patient_id]
    rows = identity_moves.message_rows(conn, done.message_id, others)
    return replace(done, moved=identity_moves.move_all(conn, rows, patient_id))


def reject(conn: Connection, review_id: int, actor: str, reason: str, now: datetime) -> Resolution:
    """End the message for good (``discarded``, kept in the journal with who and why)."""
    return _close(conn, review_id, REJECTED, State.DISCARDED, actor, reason, now, None)


def _close(
    conn: Connection,
    review_id: int,
    status: str,
    state: State,
    actor: str,
    reason: str,
    now: datetime,
    patient_id: int | None,
) -> Resolution:
    row = _open(conn, review_id)
    if row["code"] == HOMONYM:
        raise ValueError(f"review {review_id} is a notice: dismiss it")
    conn.execute(
        update(identity_reviews)
        .where(_r.id == review_id)
        .values(
            status=status,
            resolved_at=now,
            resolved_by=actor,
            resolution_reason=reason,
            patient_id=patient_id,
        )
    )
    message_id = row["message_id"]
    waiting = conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.state == State.REVIEW)
        .values(state=state, updated_at=now, next_attempt_at=None, attempts=0)
    ).rowcount
    recorded: Any = state
    if not waiting:  # filed already: its state stays, the event says so
        recorded = conn.execute(
            select(messages.c.state).where(messages.c.id == message_id)
        ).scalar()
    conn.execute(
        insert(events).values(
            message_id=message_id,
            at=now,
            state=recorded,
            attempt=0,
            stage="operator",
            code=f"identity_{status}",
            reason=reason,
            actor=actor,
        )
    )
    return Resolution(review_id, message_id, status, replayed=bool(waiting))


def _open(conn: Connection, review_id: int) -> dict[str, Any]:
    row = review(conn, review_id)
    if row is None:
        raise LookupError(f"no identity review {review_id}")
    if row["status"] != OPEN:
        raise ValueError(f"identity review {review_id} is already {row['status']}")
    return row


def _decoded(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["candidates"] = json.loads(out["candidates"] or "[]")
    return out
