"""journal_transformed: the transformed form of a message, per destination

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-10 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "journal_transformed",
        sa.Column("message_id", Id, nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["journal_messages.id"],
            name=op.f("fk_journal_transformed_message_id_journal_messages"),
        ),
        sa.PrimaryKeyConstraint("message_id", "destination", name=op.f("pk_journal_transformed")),
    )


def downgrade() -> None:
    op.drop_table("journal_transformed")
