"""Operators' views of patient data on the admin listener go through the shared record's
access layer (:mod:`engine.store.record_access`), as ``aiguillage patient show`` does: each
view leaves one line in the access log of every patient it shows, with the role ``operator``
and the operator's identity (``operator:user:alice``, ``operator:token:ops``; a CLI command
run on the host: ``operator:<login>``, as ``patient show`` writes it), which the patient reads
in ``GET /api/v1/records/{ins}/access-log``.

Views logged: a message's payload (``read_message``), a message search by patient
(``search_messages``) and an identity review's side-by-side comparison (``compare_identity``).
A patient the store does not know, or knows without an INS, has no record to log in (the
audit trail still names the view). Lines are written in the caller's transaction, which
commits before anything is shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from engine.admin.patients import matching_patients
from engine.admin.roles import Principal
from engine.pipeline.identify import compare
from engine.record.model import Actor, Role
from engine.store import patients as stored
from engine.store.record_access import Refused, open_for

READ_MESSAGE = "read_message"
SEARCH_MESSAGES = "search_messages"
COMPARE_IDENTITY = "compare_identity"
READ_RECTIFICATIONS = "read_rectifications"


def message_patients(conn: Connection, message_id: int) -> list[str]:
    """The INS of the stored patients a journaled message names (by its INS or its local
    identifiers; merged patients resolve to their survivor)."""
    identity = compare.message_identity(conn, message_id)
    if identity is None:
        return []
    by_ins, by_local = stored.lookup(conn, [i.value for i in identity.ins], identity.local_ids)
    return _ins_of([*by_ins.values(), *by_local.values()])


def term_patients(conn: Connection, term: str, facility: str = "") -> list[str]:
    """The INS of the stored patients an operator's search term names."""
    return patients_ins(conn, matching_patients(conn, term, facility))


def patients_ins(conn: Connection, patient_ids: Iterable[int]) -> list[str]:
    found = (stored.by_id(conn, pid) for pid in patient_ids)
    return _ins_of([p for p in found if p is not None])


def log_views(
    conn: Connection,
    who: Principal,
    ins_values: Iterable[str],
    action: str,
    target: str,
    reason: str,
) -> int:
    """One access-log line per record shown; how many were written."""
    actor = Actor(Role.OPERATOR, who.name if who.kind == "os" else who.actor)
    now = datetime.now(UTC)
    written = 0
    for ins in sorted(set(ins_values)):
        try:
            opened = open_for(conn, actor, ins, now)
        except Refused:  # gone since it was read (an unmerge, a purge): nothing to log in
            continue
        opened.log(conn, action, target=target, reason=reason)
        written += 1
    return written


def log_search(db: Engine, who: Principal, term: str, facility: str = "") -> int:
    """A message search by patient, in its own transaction (searches read on the read-only
    connection): one line per record the term names."""
    with db.begin() as conn:
        found = term_patients(conn, term, facility)
        return log_views(
            conn, who, found, SEARCH_MESSAGES, target="messages", reason="admin: search by patient"
        )


def log_trace(
    conn: Connection, who: Principal, term: str, facility: str, shown: Iterable[int]
) -> None:
    """``aiguillage trace``: a search when the term names patients, and a read of each message
    whose fields (transformed beside raw) are printed."""
    found = term_patients(conn, term, facility)
    log_views(conn, who, found, SEARCH_MESSAGES, target="messages", reason="aiguillage trace")
    for message_id in shown:
        ins = message_patients(conn, message_id)
        log_views(conn, who, ins, READ_MESSAGE, f"message:{message_id}", "aiguillage trace")


def _ins_of(found: Iterable[stored.StoredPatient]) -> list[str]:
    return sorted({p.ins for p in found if p.ins})
