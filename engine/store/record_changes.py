"""What the patient, their representatives and professionals change in a record: consent,
closure, authorisations and blocks, emergency access, masks, personal documents, rectification
requests. Each change goes through the rules and is logged with the reads, in the caller's
transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from engine.record import rules
from engine.record.model import Actor
from engine.store import access_log, consent, crypto, record_queries
from engine.store.access_log import append
from engine.store.record_access import Opened, Refused, open_for
from engine.store.record_tables import (
    document_settings,
    emergency_accesses,
    permissions,
    personal_documents,
    rectifications,
)

PERSONAL_PREFIX = "personal-"


def managed(conn: Connection, actor: Actor, ins: str, now: datetime) -> Opened:
    """The record opened by its patient (or representative), who alone manages it."""
    opened = open_for(conn, actor, ins, now)
    if not rules.may_manage(actor, opened.facts):
        raise Refused(rules.NOT_AUTHORISED)
    return opened


def give_consent(conn: Connection, actor: Actor, ins: str, now: datetime) -> None:
    """Consent recorded by the patient: opens or reopens the record."""
    opened = managed(conn, actor, ins, now)
    try:
        consent.open_record(conn, opened.facts.patient_id, actor.who, now)
    except ValueError as exc:
        raise Refused(rules.RECORD_CLOSED) from exc
    opened.log(conn, "consent")


def close(conn: Connection, actor: Actor, ins: str, now: datetime) -> None:
    opened = managed(conn, actor, ins, now)
    consent.close_record(conn, opened.facts.patient_id, "patient", now)
    opened.log(conn, "close")


def set_choices(
    conn: Connection,
    actor: Actor,
    ins: str,
    now: datetime,
    emergency_opposed: bool | None = None,
    medecin_traitant: str | None = None,
) -> None:
    opened = managed(conn, actor, ins, now)
    values: dict[str, object] = {}
    if emergency_opposed is not None:
        values["emergency_opposed"] = emergency_opposed
    if medecin_traitant is not None:
        values["medecin_traitant"] = rules.rpps_of(medecin_traitant)
    consent.set_choices(conn, opened.facts.patient_id, now, **values)
    opened.log(conn, "settings", target=",".join(sorted(values)))


def permit(conn: Connection, actor: Actor, ins: str, rpps: str, kind: str, now: datetime) -> None:
    """Authorise (``authorised``) or block (``blocked``) a professional; ``""`` removes it."""
    opened = managed(conn, actor, ins, now)
    pid, rpps = opened.facts.patient_id, rules.rpps_of(rpps)
    p = permissions.c
    conn.execute(delete(permissions).where(p.patient_id == pid, p.rpps == rpps))
    if kind:
        conn.execute(permissions.insert().values(patient_id=pid, rpps=rpps, kind=kind, at=now))
    opened.log(conn, {"": "remove_permission"}.get(kind, f"permission_{kind}"), target=rpps)


def permissions_of(
    conn: Connection, actor: Actor, ins: str, now: datetime
) -> list[dict[str, object]]:
    opened = managed(conn, actor, ins, now)
    p = permissions.c
    rows = conn.execute(
        select(p.rpps, p.kind, p.at).where(p.patient_id == opened.facts.patient_id).order_by(p.at)
    )
    opened.log(conn, "read_permissions")
    return [dict(r._mapping) for r in rows]


def break_glass(
    conn: Connection, actor: Actor, ins: str, reason: str, now: datetime, lasts: timedelta
) -> datetime:
    """Emergency access (L1111-17) for ``lasts``; refused (and logged) when the patient opposed
    it beforehand. Returns when it ends."""
    pid = record_queries.patient_id(conn, ins)
    if pid is None or not reason.strip():
        raise Refused(rules.NOT_FOUND if pid is None else "reason_required")
    facts = record_queries.facts(conn, pid, ins, now)
    decision = rules.emergency_allowed(actor, facts)
    if not decision.allowed:
        if decision.reason != rules.NOT_FOUND:
            append(
                conn, pid, actor, "emergency_refused", now, emergency=True, reason=decision.reason
            )
        raise Refused(decision.reason)
    ends = now + lasts
    conn.execute(
        emergency_accesses.insert().values(
            patient_id=pid, rpps=rules.rpps_of(actor.ident), reason=reason, at=now, ends_at=ends
        )
    )
    append(conn, pid, actor, "emergency_access", now, emergency=True, reason=reason)
    return ends


def mask(
    conn: Connection, actor: Actor, ins: str, document_id: str, masked: bool, now: datetime
) -> None:
    """The patient masks a document from professionals (not from its author nor the médecin
    traitant) or unmasks it."""
    opened = managed(conn, actor, ins, now)
    rows = _visible_rows(conn, opened, document_id)
    for row_id in rows:
        _settings(conn, row_id, now, patient_masked=masked)
    opened.log(conn, "mask" if masked else "unmask", target=document_id)


def reveal(conn: Connection, actor: Actor, ins: str, document_id: str, now: datetime) -> None:
    """The author lifts INVISIBLE_PATIENT (after the announcement consultation)."""
    opened = open_for(conn, actor, ins, now)
    rows = record_queries.document_rows(conn, opened.facts.patient_id, False, document_id)
    mine = [r["id"] for r in rows if rules.may_reveal(actor, record_queries.document_facts(r))]
    if not mine:
        raise Refused(rules.NOT_AUTHORISED if rows else rules.NOT_FOUND)
    for row_id in mine:
        _settings(conn, row_id, now, revealed_at=now)
    opened.log(conn, "reveal_to_patient", target=document_id)


@dataclass(frozen=True, slots=True)
class PersonalDocument:
    title: str
    kind: str = "document"  # or measurement
    text: str = ""
    code: str = ""
    value: str = ""
    unit: str = ""
    measured_at: datetime | None = None
    content: bytes = b""
    media_type: str = ""


def add_personal(
    conn: Connection, actor: Actor, ins: str, doc: PersonalDocument, now: datetime
) -> str:
    opened = managed(conn, actor, ins, now)
    digest = hashlib.sha256(doc.content or doc.text.encode("utf-8")).hexdigest()
    row = conn.execute(
        personal_documents.insert()
        .values(
            patient_id=opened.facts.patient_id,
            kind=doc.kind,
            title=doc.title,
            text=doc.text,
            code=doc.code,
            value=doc.value,
            unit=doc.unit,
            measured_at=doc.measured_at,
            content=None,  # sealed below: the seal binds the row id
            media_type=doc.media_type,
            sha256=digest,
            added_by=actor.who,
            created_at=now,
        )
        .returning(personal_documents.c.id)
    ).scalar_one()
    if doc.content:
        key_id, blob = crypto.seal(conn, doc.content, crypto.personal_aad(row))
        conn.execute(
            update(personal_documents)
            .where(personal_documents.c.id == row)
            .values(content=blob, key_id=key_id)
        )
    ident = f"{PERSONAL_PREFIX}{row}"
    opened.log(conn, "add_personal_document", target=ident)
    return ident


def delete_document(
    conn: Connection, actor: Actor, ins: str, document_id: str, now: datetime
) -> None:
    """The patient deletes their own documents, never a professional's (R1111-51)."""
    opened = managed(conn, actor, ins, now)
    c = personal_documents.c
    if document_id.startswith(PERSONAL_PREFIX) and document_id[len(PERSONAL_PREFIX) :].isdigit():
        gone = conn.execute(
            update(personal_documents)
            .where(
                c.id == int(document_id[len(PERSONAL_PREFIX) :]),
                c.patient_id == opened.facts.patient_id,
                c.deleted_at.is_(None),
            )
            .values(deleted_at=now)
        ).rowcount
        if not gone:
            raise Refused(rules.NOT_FOUND)
        opened.log(conn, "delete_personal_document", target=document_id)
        return
    if not _visible_rows(conn, opened, document_id):
        raise Refused(rules.NOT_FOUND)
    access_log.append(
        conn,
        opened.facts.patient_id,
        actor,
        "refused",
        now,
        target=document_id,
        reason="not_document_author",
    )
    raise Refused("not_document_author")


def request_rectification(
    conn: Connection, actor: Actor, ins: str, text: str, now: datetime
) -> int:
    opened = managed(conn, actor, ins, now)
    row = conn.execute(
        rectifications.insert()
        .values(
            patient_id=opened.facts.patient_id,
            text=text,
            requested_by=actor.who,
            status="open",
            at=now,
        )
        .returning(rectifications.c.id)
    ).scalar_one()
    opened.log(conn, "rectification_request", target=str(row))
    return int(row)


def _visible_rows(conn: Connection, opened: Opened, document_id: str) -> list[int]:
    rows = record_queries.document_rows(conn, opened.facts.patient_id, False, document_id)
    return [
        r["id"]
        for r in rows
        if rules.visible(opened.actor, opened.facts, record_queries.document_facts(r), opened.now)
    ]


def _settings(conn: Connection, row_id: int, now: datetime, **values: object) -> None:
    m = document_settings.c
    done = conn.execute(
        update(document_settings).where(m.document_row == row_id).values(updated_at=now, **values)
    ).rowcount
    if not done:
        conn.execute(
            document_settings.insert().values(
                document_row=row_id, updated_at=now, **{"patient_masked": False, **values}
            )
        )
