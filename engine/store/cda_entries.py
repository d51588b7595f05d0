"""What a level-3 document says, stored for reading at a glance: lab results into the
observations (linked to their document), summary entries (problems, allergies, treatments,
vaccinations, risk factors) and reimbursements. Each extractor decides from the document's own
templates whether it applies, so a document gives only what it holds."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from lxml import etree  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import Connection, insert

from engine.cda.extract_lab import LabResult, lab_results
from engine.cda.extract_remb import reimbursements
from engine.cda.extract_summary import summary_entries
from engine.hl7v2.values import parse_ts
from engine.store.documents import reimbursements as reimbursement_rows
from engine.store.documents import summary_entries as summary_rows
from engine.store.observations import add_observations
from engine.transforms.map_oru import ObservationRecord, OrderRecord


def store_extracts(
    conn: Connection,
    patient_id: int,
    message_id: int,
    document_row: int,
    root: etree._Element,
    now: datetime,
) -> int:
    """Store every entry the document holds; returns how many."""
    link = {"patient_id": patient_id, "document_row": document_row}
    results = [_record(r) for r in lab_results(root)]
    stored = add_observations(conn, results, patient_id, message_id, now, document_row)
    summary = [{**asdict(e), **link} for e in summary_entries(root)]
    claims = [{**asdict(r), **link} for r in reimbursements(root)]
    for table, rows in ((summary_rows, summary), (reimbursement_rows, claims)):
        if rows:
            conn.execute(insert(table), rows)
    return stored + len(summary) + len(claims)


def _record(r: LabResult) -> ObservationRecord:
    """A CDA lab result as an observation; its battery stands where HL7 v2 has the OBR."""
    return ObservationRecord(
        order=OrderRecord(code=r.panel_code, text=r.panel_label),
        set_id="",
        value_type=r.value_type,
        code=r.code,
        code_system=r.code_system,
        code_text=r.label,
        sub_id="",
        value=r.value,
        unit=r.unit,
        reference_range=r.reference_range,
        abnormal_flags=r.interpretation,
        status=r.status,
        observed_ts=r.observed_at,
        observed_at=parse_ts(r.observed_at) if r.observed_at else None,
    )
