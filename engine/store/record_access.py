"""The access layer of the shared record: every read by a professional, the patient, a legal
representative or an operator goes through ``open_for`` (the rules of ``engine.record.rules``)
and leaves one line in the access log, in the caller's transaction.

An unknown INS, or another patient's INS asked by a patient, is ``not_found`` for every
caller, so the API does not reveal who has a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from engine.record import rules, sections
from engine.record.model import Actor, Decision, DocumentFacts, RecordFacts, Role
from engine.store import access_log, record_queries
from engine.store.record_core import patients


class Refused(Exception):
    """An access the rules refuse: ``reason`` is the API's code (``not_found`` is a 404)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def status(self) -> int:
        return 404 if self.reason == rules.NOT_FOUND else 403


@dataclass(frozen=True, slots=True)
class Opened:
    actor: Actor
    facts: RecordFacts
    decision: Decision
    now: datetime
    #: The patient's names, birth date and sex, as the INS lookup found them (empty when the
    #: Opened was made without it: ``record_data`` then reads them).
    identity: dict[str, Any] = field(default_factory=dict)

    def log(self, conn: Connection, action: str, target: str = "", reason: str = "") -> None:
        access_log.append(
            conn,
            self.facts.patient_id,
            self.actor,
            action,
            self.now,
            target=target,
            emergency=self.decision.emergency,
            reason=reason or self.decision.basis,
        )


def open_for(conn: Connection, actor: Actor, ins: str, now: datetime) -> Opened:
    """The record of ``ins`` opened for ``actor``; raises Refused. A refused professional is
    logged too (the patient sees who tried)."""
    found = record_queries.patient(conn, ins)
    if found is None or (actor.patient_side and actor.ident != ins):
        raise Refused(rules.NOT_FOUND)
    pid = found.id
    facts = record_queries.facts(conn, pid, ins, now)
    decision = rules.decide(actor, facts, now)
    if not decision.allowed:
        if decision.reason != rules.NOT_FOUND:
            access_log.append(conn, pid, actor, "refused", now, reason=decision.reason)
        raise Refused(decision.reason)
    t = found.traits
    identity = {
        "birth_name": t.birth_name,
        "used_name": t.used_name,
        "first_given_name": t.first_given_name,
        "given_names": t.given_names,
        "birth_date": t.birth_date,
        "sex": t.sex,
    }
    return Opened(actor, facts, decision, now, identity)


def visible_documents(
    conn: Connection,
    opened: Opened,
    current_only: bool = True,
    document_id: str = "",
    full: bool = False,
) -> list[dict[str, Any]]:
    """The documents ``opened.actor`` sees, newest first, as the API shows them: in a list,
    what a reader scans (``full`` adds the author's id, level, status and filing time)."""
    rows = _visible_rows(conn, opened, current_only, document_id, lean=not full)
    return [_document(opened, row, doc, full) for row, doc in rows]


def _visible_rows(
    conn: Connection, opened: Opened, current_only: bool, document_id: str, lean: bool
) -> list[tuple[dict[str, Any], DocumentFacts]]:
    rows = record_queries.document_rows(
        conn, opened.facts.patient_id, current_only, document_id, lean=lean
    )
    actor, facts, now = opened.actor, opened.facts, opened.now
    shown = []
    for row in rows:
        doc = record_queries.document_facts(row)
        if rules.visible(actor, facts, doc, now):
            shown.append((row, doc))
    return shown


#: Only in a document's own view (and the export): a record's list leaves them out.
_FULL = ("status", "authored_at", "author_id", "level", "stored_at")


def _document(
    opened: Opened, row: dict[str, Any], doc: DocumentFacts, full: bool
) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "row": row["id"],
        "id": row["document_id"],
        "version": row["version"],
        "category": sections.category(row["type_code"]),
        "type_code": row["type_code"],
        "type_label": row["type_label"],
        "title": row["title"],
        "effective_time": row["effective_time"],
        "author_name": row["author_name"],
        "facility": row["facility"],
        "sha256": row["sha256"],
        "masked_by_patient": bool(row["patient_masked"]),
        "flags": [],
    }
    if full:
        shown.update((name, row[name]) for name in _FULL)
    if row["type_code"] == "SYNTH":
        flag = rules.vsm_flag(row["author_id"], opened.facts)
        if flag:
            shown["flags"].append(flag)
    if opened.actor.role in (Role.OPERATOR, Role.PROFESSIONAL):
        for name in ("masked_ps", "invisible_patient", "invisible_legal_reps"):
            if row[name] and (
                opened.actor.role is Role.OPERATOR or rules.is_author(opened.actor, doc)
            ):
                shown["flags"].append(name)
    return shown


def record_view(conn: Connection, actor: Actor, ins: str, now: datetime) -> dict[str, Any]:
    """The whole record in its spaces, newest first; one ``read_record`` log line."""
    opened = open_for(conn, actor, ins, now)
    view = record_data(conn, opened)
    opened.log(conn, "read_record")
    return view


def record_data(conn: Connection, opened: Opened) -> dict[str, Any]:
    """What ``opened.actor`` sees of the record (not logged: the caller logs its action)."""
    pid = opened.facts.patient_id
    docs = visible_documents(conn, opened)
    seen = {d["row"] for d in docs}
    extracts = record_queries.extracts(conn, pid, ("reimbursement", "vaccination"))
    reimbursed = [r for r in extracts["reimbursement"] if r["document_row"] in seen]
    vaccinations = [r for r in extracts["vaccination"] if r["document_row"] in seen]
    personal = record_queries.personal(conn, pid)
    return {
        "ins": opened.facts.ins,
        "state": opened.facts.state.value,
        "patient": opened.identity or _identity(conn, pid),
        "access": {"basis": opened.decision.basis, "emergency": opened.decision.emergency},
        "sections": sections.arrange(docs, reimbursed, vaccinations, personal, opened.now),
        "last_professional_access": opened.facts.last_professional_access,
    }


def document_list(
    conn: Connection, actor: Actor, ins: str, now: datetime, category: str = "", since: str = ""
) -> list[dict[str, Any]]:
    opened = open_for(conn, actor, ins, now)
    docs = visible_documents(conn, opened)
    if category:
        docs = [d for d in docs if d["category"] == category]
    if since:
        docs = [d for d in docs if (d["effective_time"] or "")[:8] >= since.replace("-", "")[:8]]
    opened.log(conn, "list_documents", target=category)
    return docs


def document_view(
    conn: Connection, actor: Actor, ins: str, document_id: str, now: datetime
) -> tuple[dict[str, Any], bytes]:
    """One document (its newest visible version) and its bytes; Refused ``not_found`` when the
    actor may not see it (a masked document is not revealed to exist)."""
    opened = open_for(conn, actor, ins, now)
    found = visible_documents(conn, opened, current_only=False, document_id=document_id, full=True)
    if not found:
        raise Refused(rules.NOT_FOUND)
    doc = found[0]
    opened.log(conn, "read_document", target=document_id)
    return doc, record_queries.content(conn, doc["row"])


def results_view(
    conn: Connection, actor: Actor, ins: str, now: datetime, code: str = ""
) -> list[dict[str, Any]]:
    """Lab results across documents, a series per analyte (points oldest first)."""
    opened = open_for(conn, actor, ins, now)
    seen = {row["id"] for row, _ in _visible_rows(conn, opened, True, "", lean=True)}
    series: dict[str, dict[str, Any]] = {}
    for r in record_queries.results(conn, opened.facts.patient_id, code):
        if r["document_row"] is not None and r["document_row"] not in seen:
            continue  # a masked, superseded or deleted document's results go with it
        s = series.setdefault(
            r["code"] or r["code_text"],
            {
                "code": r["code"],
                "code_system": r["code_system"],
                "label": r["code_text"],
                "unit": r["unit"],
                "reference_range": r["reference_range"],
                "points": [],
            },
        )
        s["points"].append(
            {
                "observed_ts": r["observed_ts"],
                "value": r["value"],
                "unit": r["unit"],
                "flag": r["abnormal_flags"],
            }
        )
    for s in series.values():
        s["points"].reverse()
    opened.log(conn, "read_results", target=code)
    return list(series.values())


def _identity(conn: Connection, pid: int) -> dict[str, Any]:
    p = patients.c
    row = conn.execute(
        select(
            p.birth_name, p.used_name, p.first_given_name, p.given_names, p.birth_date, p.sex
        ).where(p.id == pid)
    ).one()
    return dict(row._mapping)
