"""Message search and detail. Viewers get metadata only: no payload, no patient key, no
search by patient; an operator's look at a payload is audited."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from engine.admin import audit, record_views
from engine.admin.patients import patient_keys
from engine.admin.roles import Principal
from engine.admin.services.errors import Forbidden, NotFound
from engine.admin.times import aware
from engine.journal import lookups as queries
from engine.journal import search
from engine.journal.search import MessageFilter
from engine.payload_kinds import XML_CHARSET, looks_like_xml

MAX_PAGE = 500


def find_messages(
    conn: Connection,
    who: Principal,
    f: MessageFilter,
    *,
    writer: Engine,
    patient: str = "",
    facility: str = "",
    limit: int = 50,
    before_id: int | None = None,
) -> dict[str, Any]:
    """One page, newest first, and the ``before_id`` of the next page (None at the end). A
    search by patient is logged in the record of each patient it names (on ``writer``)."""
    if patient:
        if not who.sees_payloads:
            raise Forbidden("searching by patient needs the operator role")
        record_views.log_search(writer, who, patient, facility)
        f = _with_patient(f, patient_keys(conn, patient, facility))
    limit = max(1, min(limit, MAX_PAGE))
    rows = search.search(conn, f, limit + 1, before_id)
    more = len(rows) > limit
    items = [_masked(r, who) for r in rows[:limit]]
    return {"items": items, "next_before_id": items[-1]["id"] if more else None}


def message_detail(conn: Connection, who: Principal, message_id: int) -> dict[str, Any]:
    """Metadata, the journal history (times, attempts, errors, who acted) and the ACK sent."""
    row = queries.message(conn, message_id)
    if row is None:
        raise NotFound(f"no message {message_id}")
    detail = _masked({k: v for k, v in row.items() if k != "raw"}, who)
    detail["history"] = queries.history(conn, message_id)
    detail["ack"] = {"code": row["ack_code"], "reason": row["error_reason"]}
    return detail


def message_payload(conn: Connection, who: Principal, message_id: int) -> dict[str, Any]:
    """The raw bytes (as text) and their segments; operator and above, audited."""
    if not who.sees_payloads:
        raise Forbidden("payloads are shown to operators and admins only")
    row = queries.message(conn, message_id)
    if row is None:
        raise NotFound(f"no message {message_id}")
    audit.record(conn, who, "view_payload", target="message", ids=[message_id])
    record_views.log_views(  # and in the access log of its patient's record
        conn,
        who,
        record_views.message_patients(conn, message_id),
        record_views.READ_MESSAGE,
        target=f"message:{message_id}",
        reason="admin: message payload",
    )
    conn.commit()  # the view is on record before anything is shown
    return payload_view(row["raw"], row["charset"], row["size"])


def payload_view(raw: bytes, charset: str, size: int) -> dict[str, Any]:
    xml = charset == XML_CHARSET or looks_like_xml(raw)
    codec = "utf-8" if xml or not charset else charset
    try:
        text = raw.decode(codec, errors="replace")
    except LookupError:
        text = raw.decode("latin-1")
    segments = [] if xml else _segments(text)
    return {
        "kind": "xml" if xml else "hl7v2",
        "charset": charset,
        "size": size,
        "text": text,
        "segments": segments,
    }


def _segments(text: str) -> list[dict[str, Any]]:
    lines = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
    return [{"index": i, "name": s[:3], "text": s} for i, s in enumerate(lines, start=1)]


def _masked(row: dict[str, Any], who: Principal) -> dict[str, Any]:
    out = dict(row)
    if not who.sees_payloads:
        out["patient_key"] = None
    for key in ("received_at", "updated_at"):
        if isinstance(out.get(key), datetime):
            out[key] = aware(out[key])
    return out


def _with_patient(f: MessageFilter, keys: search.PatientKeys) -> MessageFilter:
    return replace(f, patient=keys)
