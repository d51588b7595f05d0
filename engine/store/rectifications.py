"""Reading the rectification requests patients made (``record_rectifications``; the request
itself is written by :func:`engine.store.record_changes.request_rectification`, through the
access layer's rules and log)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, select

from engine.store.record_tables import rectifications

_r = rectifications.c


class Rectification(NamedTuple):
    id: int
    patient_id: int
    requested_by: str
    status: str  # open, done
    at: datetime
    text: str  # the patient's own words: shown to the operator, never logged


def requests(conn: Connection) -> list[Rectification]:
    """Every rectification request, oldest first, for the operators who handle them (``aiguillage
    record rectifications``); the patient is named by id only."""
    query = select(_r.id, _r.patient_id, _r.requested_by, _r.status, _r.at, _r.text).order_by(_r.id)
    return [Rectification(*row) for row in conn.execute(query)]
