"""Tables of the identity cell's work: the folded-traits key of each patient (to find probable
duplicates and homonyms with one indexed grouping) and the duplicate pairs a human dismissed.

The key is kept by :mod:`engine.store.patients` whenever a patient is created or its strict
traits change; it is derived data (``engine.identity.model.trait_key``), never shown.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Table, Text, UniqueConstraint

from engine.db import metadata
from engine.store.record_core import Id, UtcDateTime, text_column

trait_keys = Table(
    "store_patient_trait_keys",
    metadata,
    Column("patient_id", Id, ForeignKey("store_patients.id"), primary_key=True),
    Column("trait_key", Text, nullable=False),
    # Covering: the grouping reads the index alone (an index-only scan on PostgreSQL).
    Index(None, "trait_key", "patient_id"),
)

duplicate_dismissals = Table(
    "store_duplicate_dismissals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # The pair in id order, so that (a, b) and (b, a) are one dismissal.
    Column("patient_a", Id, ForeignKey("store_patients.id"), nullable=False),
    Column("patient_b", Id, ForeignKey("store_patients.id"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    text_column("actor"),
    text_column("reason"),
    UniqueConstraint("patient_a", "patient_b"),
    CheckConstraint("patient_a < patient_b", name="ordered"),
)
