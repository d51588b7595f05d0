"""A level-3 document's entries, stored for reading at a glance: lab results into the
observations (linked to their document), summary entries and reimbursements. The transform
stage extracted them (:mod:`engine.transforms.map_cda_entries`); this writes them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Connection, insert

from engine.store.documents import reimbursements as reimbursement_rows
from engine.store.documents import summary_entries as summary_rows
from engine.store.observations import add_observations
from engine.transforms.map_cda_entries import DocumentEntries


def store_extracts(
    conn: Connection,
    patient_id: int,
    message_id: int,
    document_row: int,
    entries: DocumentEntries,
    now: datetime,
) -> int:
    """Store a document's entries under its row; returns how many."""
    link = {"patient_id": patient_id, "document_row": document_row}
    stored = add_observations(conn, entries.results, patient_id, message_id, now, document_row)
    summary = [{**asdict(e), **link} for e in entries.summary]
    claims = [{**asdict(r), **link} for r in entries.claims]
    for table, rows in ((summary_rows, summary), (reimbursement_rows, claims)):
        if rows:
            conn.execute(insert(table), rows)
    return stored + len(summary) + len(claims)
