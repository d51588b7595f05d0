"""identity cell: patients' folded-traits keys, dismissed duplicate pairs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.record_core import UtcDateTime
from engine.store.trait_keys import backfill

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "store_patient_trait_keys",
        sa.Column("patient_id", Id, nullable=False),
        sa.Column("trait_key", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["store_patients.id"],
            name=op.f("fk_store_patient_trait_keys_patient_id_store_patients"),
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_store_patient_trait_keys")),
    )
    op.create_index(
        op.f("ix_store_patient_trait_keys_trait_key_patient_id"),
        "store_patient_trait_keys",
        ["trait_key", "patient_id"],
    )
    op.create_table(
        "store_duplicate_dismissals",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("patient_a", Id, nullable=False),
        sa.Column("patient_b", Id, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.Text(), server_default="", nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint(
            "patient_a < patient_b", name=op.f("ck_store_duplicate_dismissals_ordered")
        ),
        sa.ForeignKeyConstraint(
            ["patient_a"],
            ["store_patients.id"],
            name=op.f("fk_store_duplicate_dismissals_patient_a_store_patients"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_b"],
            ["store_patients.id"],
            name=op.f("fk_store_duplicate_dismissals_patient_b_store_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_duplicate_dismissals")),
        sa.UniqueConstraint(
            "patient_a",
            "patient_b",
            name=op.f("uq_store_duplicate_dismissals_patient_a_patient_b"),
        ),
    )
    # The patients already stored get their key (folded in Python, as the engine does).
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("store_duplicate_dismissals")
    op.drop_index(
        op.f("ix_store_patient_trait_keys_trait_key_patient_id"),
        table_name="store_patient_trait_keys",
    )
    op.drop_table("store_patient_trait_keys")
