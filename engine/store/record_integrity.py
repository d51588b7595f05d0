"""Integrity of stored documents: each version's SHA-256 recomputed from its bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, select

from engine.store.documents import documents
from engine.store.record_tables import personal_documents


@dataclass(frozen=True, slots=True)
class Mismatch:
    table: str
    row: int
    document_id: str
    stored: str
    computed: str


def verify(conn: Connection, patient_id: int | None = None) -> tuple[int, list[Mismatch]]:
    """(documents checked, mismatches), for one patient or every one."""
    checked, bad = 0, []
    for table, row, ident, stored, computed in _hashes(conn, patient_id):
        checked += 1
        if stored != computed:
            bad.append(Mismatch(table, row, ident, stored, computed))
    return checked, bad


def _hashes(conn: Connection, patient_id: int | None) -> Iterator[tuple[str, int, str, str, str]]:
    d = documents.c
    query = select(d.id, d.document_id, d.sha256, d.content).order_by(d.id)
    if patient_id is not None:
        query = query.where(d.patient_id == patient_id)
    # Streamed: a store holds far more document bytes than memory.
    for r in conn.execution_options(yield_per=200).execute(query):
        yield (
            "store_documents",
            r.id,
            r.document_id,
            r.sha256,
            hashlib.sha256(r.content).hexdigest(),
        )
    p = personal_documents.c
    personal = select(p.id, p.sha256, p.content, p.text).order_by(p.id)
    if patient_id is not None:
        personal = personal.where(p.patient_id == patient_id)
    for r in conn.execute(personal):
        data = bytes(r.content) if r.content is not None else r.text.encode("utf-8")
        ident = f"personal-{r.id}"
        yield "record_personal_documents", r.id, ident, r.sha256, hashlib.sha256(data).hexdigest()
