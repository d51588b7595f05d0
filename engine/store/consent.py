"""A record's consent state: opened by the patient's consent (through the API, or an ADT from
a facility's ZFA segment), closed by the patient, by the facility's ZFA or by death, reopened
by the patient. A closed record takes no new documents (``refuse_closed``, called by the
document filing). What an ADT says is read by the transform stage
(:mod:`engine.transforms.map_consent`); :func:`apply_consent` applies it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from engine.errors import RecordClosed
from engine.record.model import State
from engine.store.record_tables import statuses
from engine.transforms.map_consent import RecordConsent

_s = statuses.c


def state(conn: Connection, patient_id: int) -> State:
    found = conn.execute(select(_s.state).where(_s.patient_id == patient_id)).scalar()
    return State(found) if found else State.NONE


def refuse_closed(conn: Connection, patient_id: int) -> None:
    """Raise RecordClosed when the patient's record is closed (the filing calls this before it
    writes a document)."""
    if state(conn, patient_id) is State.CLOSED:
        raise RecordClosed(
            f"record_closed: the record of patient {patient_id} is closed and takes no new "
            "documents (the patient may reopen it)"
        )


def open_record(conn: Connection, patient_id: int, by: str, now: datetime) -> None:
    """Record the consent: opens (or reopens) the record, unless the patient died."""
    row = conn.execute(select(_s.deceased_at).where(_s.patient_id == patient_id)).first()
    if row is None:
        conn.execute(
            statuses.insert().values(
                patient_id=patient_id,
                state=State.OPEN.value,
                consent_at=now,
                consent_by=by,
                emergency_opposed=False,
                updated_at=now,
            )
        )
        return
    if row.deceased_at is not None:
        raise ValueError("the patient died: the record stays closed")
    _set(
        conn,
        patient_id,
        now,
        state=State.OPEN.value,
        consent_at=now,
        consent_by=by,
        closed_at=None,
        closed_reason="",
    )


def close_record(conn: Connection, patient_id: int, reason: str, now: datetime) -> None:
    _ensure(conn, patient_id, now)
    _set(conn, patient_id, now, state=State.CLOSED.value, closed_at=now, closed_reason=reason)


def record_death(conn: Connection, patient_id: int, died_at: datetime, now: datetime) -> None:
    _ensure(conn, patient_id, now)
    _set(
        conn,
        patient_id,
        now,
        state=State.CLOSED.value,
        closed_at=now,
        closed_reason="death",
        deceased_at=died_at,
    )


def set_choices(conn: Connection, patient_id: int, now: datetime, **values: Any) -> None:
    """The patient's settings: ``emergency_opposed``, ``medecin_traitant``."""
    _ensure(conn, patient_id, now)
    _set(conn, patient_id, now, **values)


def apply_consent(
    conn: Connection, patient_id: int, said: RecordConsent, sender: str, now: datetime
) -> None:
    """Apply what an ADT said of the record (death, ZFA consent, closure, emergency
    opposition), given the record's state. Called by the record store after it filed the
    patient; ``sender`` is who sent the ADT (the consent is recorded as given through it)."""
    if said.died:
        record_death(conn, patient_id, said.died_at or now, now)
        return
    current = state(conn, patient_id)
    if said.closes and current is State.OPEN:
        close_record(conn, patient_id, "adt", now)
    elif said.consents and current is State.NONE:
        open_record(conn, patient_id, f"adt:{sender}", now)
    if said.emergency_opposed is not None and state(conn, patient_id) is not State.NONE:
        _set(conn, patient_id, now, emergency_opposed=said.emergency_opposed)


def _ensure(conn: Connection, patient_id: int, now: datetime) -> None:
    """A status row to change (a closure or a choice may come before any consent: the
    record stays unopened)."""
    if conn.execute(select(_s.patient_id).where(_s.patient_id == patient_id)).first() is None:
        conn.execute(
            statuses.insert().values(
                patient_id=patient_id,
                state=State.NONE.value,
                emergency_opposed=False,
                updated_at=now,
            )
        )


def _set(conn: Connection, patient_id: int, now: datetime, **values: Any) -> None:
    conn.execute(
        update(statuses).where(_s.patient_id == patient_id).values(updated_at=now, **values)
    )
