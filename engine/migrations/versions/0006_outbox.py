"""outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "journal_outbox",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("message_id", Id, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["journal_messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_journal_outbox_due", "journal_outbox", ["sent_at", "next_attempt_at"])
    op.create_index("ix_journal_outbox_message_id", "journal_outbox", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_journal_outbox_message_id", table_name="journal_outbox")
    op.drop_index("ix_journal_outbox_due", table_name="journal_outbox")
    op.drop_table("journal_outbox")
