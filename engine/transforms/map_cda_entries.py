"""What a level-3 document holds for reading at a glance, mapped by the transform stage for the
record store: lab results as observations, summary entries (problems, allergies, treatments,
vaccinations, risk factors) and reimbursements. Each extractor decides from the document's own
templates whether it applies, so a document gives only what it holds. The store writes them,
linked to the document's row, when it stores the document
(:func:`engine.store.cda_entries.store_extracts`). Pure: no database."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.extract_lab import LabResult, lab_results
from engine.cda.extract_remb import Reimbursement, reimbursements
from engine.cda.extract_summary import SummaryEntry, summary_entries
from engine.hl7v2.values import parse_ts
from engine.transforms.map_oru import ObservationRecord, OrderRecord


@dataclass(frozen=True, slots=True)
class DocumentEntries:
    """The entries of one document, as the record store keeps them."""

    results: tuple[ObservationRecord, ...] = ()
    summary: tuple[SummaryEntry, ...] = ()
    claims: tuple[Reimbursement, ...] = ()


#: What a document that is only deleted (its copy carried for the record) gives.
NO_ENTRIES = DocumentEntries()


def document_entries(root: etree._Element) -> DocumentEntries:
    """Every entry the document (its parsed tree) holds."""
    return DocumentEntries(
        tuple(_observation(r) for r in lab_results(root)),
        tuple(summary_entries(root)),
        tuple(reimbursements(root)),
    )


def _observation(r: LabResult) -> ObservationRecord:
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
