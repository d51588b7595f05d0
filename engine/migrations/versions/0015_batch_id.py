"""journal_messages.batch_id and batch_position: the HL7 v2 batch (FHS/BHS) a message came in

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-03 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journal_messages") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("batch_position", sa.Integer(), nullable=True))
    # Partial: single messages (batch_id NULL) cost the index nothing.
    op.create_index(
        "ix_journal_messages_batch_id",
        "journal_messages",
        ["batch_id"],
        postgresql_where=sa.text("batch_id IS NOT NULL"),
        sqlite_where=sa.text("batch_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_journal_messages_batch_id", table_name="journal_messages")
    with op.batch_alter_table("journal_messages") as batch:
        batch.drop_column("batch_position")
        batch.drop_column("batch_id")
