"""``/api/v1/records/{ins}``: the record, its documents, results, the patient's choices, bris
de glace, the access log and the export. Every route goes through the access layer
(``engine.store.record_access``); its refusals become 403 with a reason code, or 404."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from engine.record.model import Actor
from engine.record_api.auth import authenticated, require_actor
from engine.store import access_log, record_access, record_changes
from engine.store.record_access import Refused
from engine.store.record_export import export_zip

router = APIRouter(prefix="/api/v1/records/{ins}", tags=["records"])
ActorDep = Annotated[Actor, Depends(require_actor)]


@contextmanager
def _conn(request: Request) -> Iterator[Connection]:
    """A transaction that commits on success and on a refusal too: the access layer raises
    Refused before any change but after logging the refused attempt, which must stay."""
    with request.app.state.db.connect() as conn:
        try:
            yield conn
        except Refused:
            conn.commit()
            raise
        conn.commit()


@contextmanager
def _reading(request: Request) -> Iterator[tuple[Connection, Actor]]:
    """A read's transaction, its actor authenticated in it: the token lookup, the reads and
    the access-log line share one connection and one commit (the writes authenticate in a
    dependency, before their body is read)."""
    with _conn(request) as conn:
        yield conn, authenticated(request, conn)


def _now() -> datetime:
    return datetime.now(UTC)


def as_json(data: Any) -> Response:
    """JSON straight from ``json.dumps``: FastAPI's encoder walks every value in Python and
    cost more than the queries for a record of 200 documents (measured: bench/record_api.py)."""
    body = json.dumps(data, default=_default, ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), media_type="application/json")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


@router.get("", response_model=None)
def get_record(ins: str, request: Request) -> Response:
    """The record in its spaces (medical by category, reimbursements of the last 24 months,
    prevention, personal), newest first."""
    with _reading(request) as (conn, actor):
        return as_json(record_access.record_view(conn, actor, ins, _now()))


@router.get("/documents", response_model=None)
def list_documents(ins: str, request: Request, category: str = "", since: str = "") -> Response:
    with _reading(request) as (conn, actor):
        return as_json(record_access.document_list(conn, actor, ins, _now(), category, since))


@router.get("/documents/{document_id}", response_model=None)
def get_document(ins: str, document_id: str, request: Request) -> Response:
    """Metadata and SHA-256; the CDA itself with ``Accept: application/xml``."""
    with _reading(request) as (conn, actor):
        doc, content = record_access.document_view(conn, actor, ins, document_id, _now())
    if "xml" in request.headers.get("accept", ""):
        return Response(content, media_type="application/xml", headers={"X-SHA256": doc["sha256"]})
    return as_json(doc)


@router.delete("/documents/{document_id}", status_code=204)
def delete_document(ins: str, document_id: str, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.delete_document(conn, actor, ins, document_id, _now())


@router.post("/documents/{document_id}/mask", status_code=204)
def mask(ins: str, document_id: str, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.mask(conn, actor, ins, document_id, True, _now())


@router.delete("/documents/{document_id}/mask", status_code=204)
def unmask(ins: str, document_id: str, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.mask(conn, actor, ins, document_id, False, _now())


@router.post("/documents/{document_id}/reveal", status_code=204)
def reveal(ins: str, document_id: str, actor: ActorDep, request: Request) -> None:
    """The author lifts INVISIBLE_PATIENT."""
    with _conn(request) as conn:
        record_changes.reveal(conn, actor, ins, document_id, _now())


@router.get("/results", response_model=None)
def results(ins: str, request: Request, code: str = "") -> Response:
    with _reading(request) as (conn, actor):
        return as_json(record_access.results_view(conn, actor, ins, _now(), code))


@router.post("/consent", status_code=204)
def consent(ins: str, actor: ActorDep, request: Request) -> None:
    """The patient's consent: opens the record (or reopens a closed one)."""
    with _conn(request) as conn:
        record_changes.give_consent(conn, actor, ins, _now())


@router.post("/reopen", status_code=204)
def reopen(ins: str, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.give_consent(conn, actor, ins, _now())


@router.post("/close", status_code=204)
def close(ins: str, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.close(conn, actor, ins, _now())


class Choices(BaseModel):
    emergency_opposed: bool | None = Field(default=None, description="oppose bris de glace")
    medecin_traitant: str | None = Field(default=None, description="RPPS of the médecin traitant")


@router.patch("/settings", status_code=204)
def settings(ins: str, choices: Choices, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.set_choices(
            conn, actor, ins, _now(), choices.emergency_opposed, choices.medecin_traitant
        )


@router.get("/authorizations", response_model=None)
def authorizations(ins: str, request: Request) -> Response:
    with _reading(request) as (conn, actor):
        return as_json(record_changes.permissions_of(conn, actor, ins, _now()))


@router.post("/authorizations/{rpps}", status_code=204)
def authorise(ins: str, rpps: str, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.permit(conn, actor, ins, rpps, "authorised", _now())


@router.delete("/authorizations/{rpps}", status_code=204)
def withdraw(ins: str, rpps: str, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.permit(conn, actor, ins, rpps, "", _now())


@router.post("/blocks/{rpps}", status_code=204)
def block(ins: str, rpps: str, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.permit(conn, actor, ins, rpps, "blocked", _now())


@router.delete("/blocks/{rpps}", status_code=204)
def unblock(ins: str, rpps: str, actor: ActorDep, request: Request) -> None:
    with _conn(request) as conn:
        record_changes.permit(conn, actor, ins, rpps, "", _now())


class Emergency(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/emergency-access", status_code=201)
def emergency(ins: str, body: Emergency, actor: ActorDep, request: Request) -> dict[str, Any]:
    """Bris de glace: time-limited, logged and shown to the patient."""
    lasts = timedelta(minutes=request.app.state.settings.emergency_minutes)
    with _conn(request) as conn:
        ends = record_changes.break_glass(conn, actor, ins, body.reason, _now(), lasts)
    return {"ends_at": ends}


class Personal(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    kind: Literal["document", "measurement"] = "document"
    text: str = Field(default="", max_length=100_000)
    code: str = ""
    value: str = ""
    unit: str = ""
    measured_at: datetime | None = None


@router.post("/personal-documents", status_code=201)
def personal(ins: str, body: Personal, actor: ActorDep, request: Request) -> dict[str, str]:
    doc = record_changes.PersonalDocument(**body.model_dump())
    with _conn(request) as conn:
        return {"id": record_changes.add_personal(conn, actor, ins, doc, _now())}


class Rectification(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


@router.post("/rectifications", status_code=201)
def rectification(
    ins: str, body: Rectification, actor: ActorDep, request: Request
) -> dict[str, int]:
    with _conn(request) as conn:
        return {"id": record_changes.request_rectification(conn, actor, ins, body.text, _now())}


@router.get("/access-log", response_model=None)
def get_access_log(ins: str, request: Request) -> Response:
    """Who read or wrote the record, newest first, emergencies flagged: the patient's."""
    with _reading(request) as (conn, actor):
        opened = record_changes.managed(conn, actor, ins, _now())
        entries = access_log.entries(conn, opened.facts.patient_id)
        opened.log(conn, "read_access_log")
    return as_json(entries)


@router.get("/export")
def export(ins: str, request: Request) -> Response:
    """The right of access: the whole record as JSON plus the CDA documents, in a ZIP."""
    with _reading(request) as (conn, actor):
        data = export_zip(conn, actor, ins, _now())
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="record.zip"'},
    )
