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

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from engine.errors import IdentityError
from engine.journal import lookups
from engine.journal.message_tables import State
from engine.store import identity_moves, patients
from engine.store import identity_reviews as queue
from engine.store.identity_reviews import (
    ATTACHED,
    DISMISSED,
    HOMONYM,
    OPEN,
    REJECTED,
    attached_patient,
    review,
    reviews,
)

__all__ = [
    "ATTACHED",
    "DISMISSED",
    "HOMONYM",
    "OPEN",
    "REJECTED",
    "Resolution",
    "attach",
    "attached_patient",
    "dismiss",
    "open_notice",
    "open_review",
    "reject",
    "review",
    "reviews",
]

_TWO_IDENTITIES = frozenset({"A40", "A47"})


def open_review(
    conn: Connection, message_id: int, channel: str, error: IdentityError, now: datetime
) -> None:
    """Queue a message for review (in the caller's transaction); a replayed message that
    fails again reuses its open review."""
    if not queue.reopen(conn, message_id, error.code, error.reason, error.candidates):
        queue.add(conn, message_id, channel, error.code, error.reason, error.candidates, now)


def open_notice(
    conn: Connection, message_id: int, patient_id: int, homonyms: list[int], now: datetime
) -> None:
    """A ``homonym`` notice: the message created ``patient_id``, whose folded strict traits
    equal those of ``homonyms`` (not the same identity: twins, namesakes or a duplicate)."""
    reason = (
        f"a new patient has the same birth name, first given name, birth date and sex "
        f"as {len(homonyms)} other patient(s): homonyms, or a duplicate to merge"
    )
    channel = lookups.channel_of(conn, message_id) or ""
    queue.add(conn, message_id, channel, HOMONYM, reason, [patient_id, *homonyms], now)


def dismiss(conn: Connection, review_id: int, actor: str, reason: str, now: datetime) -> int:
    """Close a notice (seen by the cell); returns its message id."""
    row = _open(conn, review_id)
    if row["code"] != HOMONYM:
        raise ValueError(f"review {review_id} is not a notice: resolve it (--patient or --reject)")
    queue.resolve(conn, review_id, DISMISSED, actor, reason, now)
    return int(row["message_id"])


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
    if patients.by_id(conn, patient_id) is None:
        raise LookupError(f"no patient {patient_id} in the store")
    row = review(conn, review_id)
    message = None if row is None else lookups.message(conn, row["message_id"])
    trigger = None if message is None else message["trigger"]
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
    queue.resolve(conn, review_id, status, actor, reason, now, patient_id)
    message_id = row["message_id"]
    # A message filed already (not waiting in review) keeps its state: the event says so.
    waiting = lookups.end_review(conn, message_id, state, f"identity_{status}", reason, actor, now)
    return Resolution(review_id, message_id, status, replayed=waiting)


def _open(conn: Connection, review_id: int) -> dict[str, Any]:
    row = review(conn, review_id)
    if row is None:
        raise LookupError(f"no identity review {review_id}")
    if row["status"] != OPEN:
        raise ValueError(f"identity review {review_id} is already {row['status']}")
    return row
