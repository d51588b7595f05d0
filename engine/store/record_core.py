"""Record store tables (SQLAlchemy Core, on the shared ``engine.db.metadata``).

The hot path (ORU^R01 ingest) writes these with Core statements, never the ORM. Text columns
have no length: HL7 fields are unbounded and both SQLite and PostgreSQL store ``TEXT`` cheaply.
Absent HL7 values are stored as ``""`` rather than NULL so that unique constraints on
identifiers hold when an assigning authority is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

from engine.db import metadata

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zone type and gives back naive values; this stores UTC and reads it back
    as aware UTC, so that code never compares naive and aware datetimes. On SQLite the text is
    written and read with the C ``isoformat``/``fromisoformat`` in SQLAlchemy's own storage
    format (``2024-03-06 10:11:54.000000``): its generic processors cost about 5 µs per value,
    a fifth of the observation insert on the ORU hot path.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_bind

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _sqlite_result


@lru_cache(maxsize=4096)
def _sqlite_bind(value: datetime | None) -> str | None:
    # Cached: the rows of one message share their times (created_at, most observation times).
    # Equal aware datetimes are the same instant, so they share one UTC text.
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_result(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def text_column(name: str) -> Column[str]:
    """A text column where absent HL7 values are ``""`` (not NULL)."""
    return Column(name, Text, nullable=False, default="", server_default="")


patients = Table(
    "store_patients",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # The INS (DOMAIN.md §1): at most one per patient, one patient per INS (partial unique
    # index below). Only a qualified identity (PID-32 VALI) carries one.
    text_column("ins"),
    text_column("ins_oid"),
    text_column("identity_status"),  # PID-32 codes as received, e.g. VALI, PROV
    # Traits: birth name, first given name, given names, birth date, sex, birth place.
    text_column("birth_name"),
    text_column("first_given_name"),
    text_column("given_names"),
    text_column("birth_date"),  # YYYYMMDD as received
    Column("birth_date_parsed", Date),
    text_column("sex"),
    text_column("birth_place"),  # INSEE code
    text_column("used_name"),
    text_column("address"),
    text_column("phone"),
    # A40: the patient this one was merged into; the absorbed identity still resolves to it.
    Column("merged_into", Id, ForeignKey("store_patients.id")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The journal message that last touched the row (no FK: the journal may live elsewhere).
    Column("last_message_id", BigInteger),
    Index(
        "uq_store_patients_ins",
        "ins",
        unique=True,
        sqlite_where=text("ins != ''"),
        postgresql_where=text("ins != ''"),
    ),
)

patient_identifiers = Table(
    "store_patient_identifiers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False, index=True),
    Column("value", Text, nullable=False),
    text_column("authority"),  # CX-4.1 namespace id
    text_column("authority_oid"),  # CX-4.2 universal id
    text_column("type_code"),  # CX-5: PI, MR... (the INS lives on the patient)
    UniqueConstraint("value", "authority", "authority_oid", "type_code"),
)

encounters = Table(
    "store_encounters",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False),
    Column("visit_number", Text, nullable=False),
    text_column("visit_authority"),
    text_column("patient_class"),
    text_column("location"),
    text_column("attending"),
    Column("admitted_at", UtcDateTime),
    Column("discharged_at", UtcDateTime),
    Column("status", Text, nullable=False),  # open, closed, cancelled
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_message_id", BigInteger),
    UniqueConstraint("patient_id", "visit_number", "visit_authority"),
)

observations = Table(
    "store_observations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False),
    Column("message_id", BigInteger, nullable=False),
    # The CDA document (store_documents.id) a result was extracted from; NULL for HL7 v2 OBX.
    Column("document_row", BigInteger),
    text_column("order_placer_number"),
    text_column("order_filler_number"),
    text_column("order_code"),
    text_column("order_code_system"),
    text_column("order_text"),
    text_column("set_id"),
    text_column("value_type"),
    text_column("code"),
    text_column("code_system"),
    text_column("code_text"),
    text_column("sub_id"),
    text_column("value"),
    text_column("unit"),
    text_column("reference_range"),
    text_column("abnormal_flags"),
    text_column("status"),
    text_column("observed_ts"),  # OBX-14 (else OBR-7) as received, kept when unparsable
    Column("observed_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "patient_id", "id"),
    Index(None, "message_id"),
)

identity_events = Table(
    "store_identity_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("store_patients.id"), nullable=False, index=True),
    Column("message_id", BigInteger),  # the journal message that caused it, if any
    Column("at", UtcDateTime, nullable=False),
    Column("event", Text, nullable=False),  # created, traits_updated, ins_attached, ...
    text_column("detail"),  # JSON: the values before and after
    text_column("actor"),  # "engine" or the operator
    text_column("reason"),
)

merges = Table(
    "store_merges",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("survivor_id", Id, ForeignKey("store_patients.id"), nullable=False),
    Column("absorbed_id", Id, ForeignKey("store_patients.id"), nullable=False),
    Column("message_id", BigInteger),
    Column("at", UtcDateTime, nullable=False),
    Column("moved", Text, nullable=False),  # JSON: ids of the rows moved, to undo the merge
    Column("undone_at", UtcDateTime),
    text_column("undone_by"),
    text_column("undo_reason"),
)

identity_reviews = Table(
    "store_identity_reviews",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", BigInteger, nullable=False, index=True),
    Column("channel", Text, nullable=False),
    Column("code", Text, nullable=False),  # 903, 904, 905
    Column("reason", Text, nullable=False),
    text_column("candidates"),  # JSON: ids of the stored patients involved
    Column("status", Text, nullable=False),  # open, attached, rejected
    Column("created_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),
    text_column("resolved_by"),
    text_column("resolution_reason"),
    Column("patient_id", Id, ForeignKey("store_patients.id")),  # when attached
)
