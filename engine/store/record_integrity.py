"""Integrity of stored documents: each version's SHA-256 recomputed from its bytes (opened
first when sealed: the digest is of the plaintext)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from engine.errors import RecordKeyError
from engine.store import crypto
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
    """Hashes of the plaintext: sealed bytes are opened first, and bytes that do not open
    (changed, or a key not in hand) are a mismatch named by the error's code."""
    d = documents.c
    query = select(d.id, d.document_id, d.version, d.key_id, d.sha256, d.content).order_by(d.id)
    if patient_id is not None:
        query = query.where(d.patient_id == patient_id)
    # Streamed: a store holds far more document bytes than memory.
    for r in conn.execution_options(yield_per=200).execute(query):
        computed = _digest(crypto.open_document, conn, r)
        yield "store_documents", r.id, r.document_id, r.sha256, computed
    p = personal_documents.c
    personal = select(p.id, p.sha256, p.key_id, p.content, p.text).order_by(p.id)
    if patient_id is not None:
        personal = personal.where(p.patient_id == patient_id)
    for q in conn.execute(personal):
        if q.content is None:
            computed = hashlib.sha256(q.text.encode("utf-8")).hexdigest()
        else:
            computed = _digest(crypto.open_personal, conn, q)
        ident = f"personal-{q.id}"
        yield "record_personal_documents", q.id, ident, q.sha256, computed


def _digest(opener: Callable[[Connection, Any], bytes], conn: Connection, row: Any) -> str:
    try:
        return hashlib.sha256(opener(conn, row)).hexdigest()
    except RecordKeyError as exc:
        return f"unreadable ({exc.code})"
