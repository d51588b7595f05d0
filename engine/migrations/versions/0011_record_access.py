"""record access: professionals, patients and representatives, consent states, authorisations
and blocks, emergency accesses, masks, personal documents, rectification requests, and the
append-only access log of the shared record

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-03 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.access_log import POSTGRES_FUNCTION, POSTGRES_TRIGGER, SQLITE_TRIGGER
from engine.store.record_core import UtcDateTime

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

TABLES = (
    "record_document_settings",
    "record_statuses",
    "record_rectifications",
    "record_personal_documents",
    "record_permissions",
    "record_emergency_accesses",
    "record_professionals",
    "record_accounts",
    "record_access_log",
)


def upgrade() -> None:
    op.create_table(
        "record_access_log",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("patient_id", Id, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.Text(), server_default="", nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_access_log")),
    )
    op.create_index(
        op.f("ix_record_access_log_patient_id_id"),
        "record_access_log",
        ["patient_id", "id"],
        unique=False,
    )
    op.create_table(
        "record_accounts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("ins", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_accounts")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_record_accounts_token_hash")),
    )
    op.create_index(op.f("ix_record_accounts_ins"), "record_accounts", ["ins"], unique=False)
    op.create_table(
        "record_professionals",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("rpps", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("profession", sa.Text(), server_default="", nullable=False),
        sa.Column("facility", sa.Text(), server_default="", nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_professionals")),
        sa.UniqueConstraint("rpps", name=op.f("uq_record_professionals_rpps")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_record_professionals_token_hash")),
    )
    op.create_table(
        "record_emergency_accesses",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("patient_id", Id, nullable=False),
        sa.Column("rpps", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["store_patients.id"],
            name=op.f("fk_record_emergency_accesses_patient_id_store_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_emergency_accesses")),
    )
    op.create_index(
        op.f("ix_record_emergency_accesses_patient_id_rpps"),
        "record_emergency_accesses",
        ["patient_id", "rpps"],
        unique=False,
    )
    op.create_table(
        "record_permissions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("patient_id", Id, nullable=False),
        sa.Column("rpps", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["store_patients.id"],
            name=op.f("fk_record_permissions_patient_id_store_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_permissions")),
        sa.UniqueConstraint(
            "patient_id", "rpps", name=op.f("uq_record_permissions_patient_id_rpps")
        ),
    )
    op.create_table(
        "record_personal_documents",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("patient_id", Id, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("code", sa.Text(), server_default="", nullable=False),
        sa.Column("value", sa.Text(), server_default="", nullable=False),
        sa.Column("unit", sa.Text(), server_default="", nullable=False),
        sa.Column("measured_at", UtcDateTime(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("media_type", sa.Text(), server_default="", nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("added_by", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["store_patients.id"],
            name=op.f("fk_record_personal_documents_patient_id_store_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_personal_documents")),
    )
    op.create_index(
        op.f("ix_record_personal_documents_patient_id"),
        "record_personal_documents",
        ["patient_id"],
        unique=False,
    )
    op.create_table(
        "record_rectifications",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("patient_id", Id, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["store_patients.id"],
            name=op.f("fk_record_rectifications_patient_id_store_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_rectifications")),
    )
    op.create_index(
        op.f("ix_record_rectifications_patient_id"),
        "record_rectifications",
        ["patient_id"],
        unique=False,
    )
    op.create_table(
        "record_statuses",
        sa.Column("patient_id", Id, nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("consent_at", UtcDateTime(), nullable=True),
        sa.Column("consent_by", sa.Text(), server_default="", nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("closed_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("deceased_at", UtcDateTime(), nullable=True),
        sa.Column("emergency_opposed", sa.Boolean(), nullable=False),
        sa.Column("medecin_traitant", sa.Text(), server_default="", nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["store_patients.id"],
            name=op.f("fk_record_statuses_patient_id_store_patients"),
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_record_statuses")),
    )
    op.create_table(
        "record_document_settings",
        sa.Column("document_row", Id, nullable=False),
        sa.Column("patient_masked", sa.Boolean(), nullable=False),
        sa.Column("revealed_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_row"],
            ["store_documents.id"],
            name=op.f("fk_record_document_settings_document_row_store_documents"),
        ),
        sa.PrimaryKeyConstraint("document_row", name=op.f("pk_record_document_settings")),
    )

    # The access log refuses UPDATE (DELETE stays for the retention purge).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER record_access_log_append_only ON record_access_log")
        op.execute("DROP FUNCTION record_access_log_append_only()")
    for name in TABLES:
        op.drop_table(name)
