"""The record store's documents (CDA R2), as the DMP keeps them (DOMAIN.md §3-6).

Every version is kept: a replacement marks the version it replaces ``superseded``, a deletion
marks the document ``deleted`` (kept for audit, hidden from readers). A document id and version
is stored once: re-sending or replaying it changes nothing.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from engine.db import metadata
from engine.store.record_core import Id, UtcDateTime, text_column

CURRENT, SUPERSEDED, DELETED = "current", "superseded", "deleted"

documents = Table(
    "store_documents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False),
    Column("message_id", BigInteger),  # the journal message that brought it
    Column("document_id", Text, nullable=False),  # ClinicalDocument/id: root or root^extension
    text_column("set_id"),
    Column("version", Integer, nullable=False),
    text_column("type_code"),  # LOINC 11502-2, SYNTH, REMB...
    text_column("type_system"),
    text_column("type_label"),
    text_column("title"),
    text_column("effective_time"),  # as written (HL7 TS)
    Column("authored_at", UtcDateTime),
    text_column("confidentiality"),  # N, R, V
    Column("masked_ps", Boolean, nullable=False, default=False),  # MASQUE_PS
    Column("invisible_patient", Boolean, nullable=False, default=False),
    Column("invisible_legal_reps", Boolean, nullable=False, default=False),
    text_column("author_id"),  # RPPS / ADELI: root^extension
    text_column("author_name"),
    text_column("facility"),
    text_column("service_start"),
    text_column("service_end"),
    text_column("level"),  # N1 (PDF body) or N3 (structured)
    text_column("replaces"),  # document id of the version it replaces
    # The sender identity (journal_messages.sender) that filed this version: only it (or its
    # ownership group) may replace or delete the document.
    text_column("filed_by"),
    Column("status", Text, nullable=False),  # current, superseded, deleted
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),  # engine.store.crypto seals it
    Column("key_id", String(16), index=True),  # the key that sealed content; NULL: plaintext
    Column("stored_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("document_id", "version"),
    Index(None, "patient_id", "status"),
    # The later versions of a document (migration 0019): what replaces it, its set's next.
    Index("ix_store_documents_replaces", "replaces"),
    Index("ix_store_documents_set_id_version", "set_id", "version"),
)

#: What level-3 documents say, extracted for reading at a glance. Rows follow their document:
#: readers show those of current documents only.
summary_entries = Table(
    "store_summary_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False, index=True),
    Column("document_row", Id, ForeignKey("store_documents.id"), nullable=False, index=True),
    Column("kind", Text, nullable=False),  # problem, allergy, treatment, vaccination, risk_factor
    text_column("code"),
    text_column("code_system"),
    text_column("label"),
    text_column("start"),
    text_column("end"),
    text_column("text"),
)

reimbursements = Table(
    "store_reimbursements",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False, index=True),
    Column("document_row", Id, ForeignKey("store_documents.id"), nullable=False, index=True),
    Column("category", Text, nullable=False),  # medicine, vaccination, device, encounter, ...
    text_column("code"),
    text_column("code_system"),
    text_column("label"),
    text_column("date"),
    text_column("quantity"),
    text_column("prescriber"),
)
