"""The right of access: the whole record as the patient sees it, as JSON, with the CDA of
each document and the personal documents' contents, in one ZIP."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from engine.record.model import Actor
from engine.store import access_log, crypto, record_queries
from engine.store.record_access import open_for, record_data, visible_documents
from engine.store.record_tables import personal_documents


def export_zip(conn: Connection, actor: Actor, ins: str, now: datetime) -> bytes:
    opened = open_for(conn, actor, ins, now)
    data = record_data(conn, opened)
    data["documents"] = visible_documents(conn, opened, current_only=False, full=True)
    data["access_log"] = access_log.entries(conn, opened.facts.patient_id, limit=100_000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for doc in data["documents"]:
            name = f"documents/{_safe(doc['id'])}_v{doc['version']}.xml"
            doc["file"] = name
            archive.writestr(name, record_queries.content(conn, doc["row"]))
        c = personal_documents.c
        for row in conn.execute(
            select(c.id, c.key_id, c.content).where(
                c.patient_id == opened.facts.patient_id,
                c.deleted_at.is_(None),
                c.content.is_not(None),
            )
        ):
            archive.writestr(f"personal/{row.id}", crypto.open_personal(conn, row))
        archive.writestr(
            "record.json", json.dumps(data, default=_json, indent=2, ensure_ascii=False)
        )
    opened.log(conn, "export")
    return buffer.getvalue()


def _safe(document_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in document_id)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    raise TypeError(type(value).__name__)
