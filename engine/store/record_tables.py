"""Tables of the shared record's read side: who reads (professionals, patients and their
representatives, with hashed tokens), each record's consent state and the patient's choices
(authorisations, blocks, masks), emergency accesses, personal documents, rectification
requests. The access log has its own module (``engine.store.access_log``).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from engine.db import metadata
from engine.store.record_core import Id, UtcDateTime, text_column

professionals = Table(
    "record_professionals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rpps", String(32), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    text_column("profession"),
    text_column("facility"),
    Column("token_hash", String(64), unique=True),  # SHA-256 of the demo token
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

#: The patient's own login and their legal representatives' (by INS, not by patient row: an
#: account may be enrolled before the first message about the patient arrives).
accounts = Table(
    "record_accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ins", String(32), nullable=False, index=True),
    Column("role", String(16), nullable=False),  # patient, representative
    text_column("name"),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

#: One row per record once consent was recorded (no row: no record to show).
statuses = Table(
    "record_statuses",
    metadata,
    Column("patient_id", Id, ForeignKey("store_patients.id"), primary_key=True),
    Column("state", String(8), nullable=False),  # open, closed
    Column("consent_at", UtcDateTime),
    text_column("consent_by"),  # patient, representative:<name>, or the ADT's sender
    Column("closed_at", UtcDateTime),
    text_column("closed_reason"),  # patient, death, adt
    Column("deceased_at", UtcDateTime),
    Column("emergency_opposed", Boolean, nullable=False, default=False),
    text_column("medecin_traitant"),  # RPPS
    Column("updated_at", UtcDateTime, nullable=False),
)

#: The patient's authorisations and blocks of professionals outside (or inside) the care team.
permissions = Table(
    "record_permissions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False),
    Column("rpps", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # authorised, blocked
    Column("at", UtcDateTime, nullable=False),
    UniqueConstraint("patient_id", "rpps"),
)

emergency_accesses = Table(
    "record_emergency_accesses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False),
    Column("rpps", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
    Index(None, "patient_id", "rpps"),
)

#: The patient's masks and the author's lifting of INVISIBLE_PATIENT, per stored version.
document_settings = Table(
    "record_document_settings",
    metadata,
    Column("document_row", Id, ForeignKey("store_documents.id"), primary_key=True),
    Column("patient_masked", Boolean, nullable=False, default=False),
    Column("revealed_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
)

personal_documents = Table(
    "record_personal_documents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # document, measurement
    Column("title", Text, nullable=False),
    text_column("text"),
    text_column("code"),  # a measurement: what (e.g. LOINC 29463-7 body weight)
    text_column("value"),
    text_column("unit"),
    Column("measured_at", UtcDateTime),
    Column("content", LargeBinary),  # engine.store.crypto seals it (key_id NULL: plaintext)
    Column("key_id", String(16), index=True),
    text_column("media_type"),
    Column("sha256", String(64), nullable=False),
    text_column("added_by"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime),
)

rectifications = Table(
    "record_rectifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False, index=True),
    Column("text", Text, nullable=False),
    text_column("requested_by"),
    Column("status", String(16), nullable=False),  # open, done
    Column("at", UtcDateTime, nullable=False),
)

RECORD_TABLES = (
    professionals,
    accounts,
    statuses,
    permissions,
    emergency_accesses,
    document_settings,
    personal_documents,
    rectifications,
)
