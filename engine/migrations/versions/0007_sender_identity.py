"""sender identity: journal_messages.sender, store_documents.filed_by, security_senders

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("journal_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender", sa.String(length=255), nullable=True))
    with op.batch_alter_table("store_documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("filed_by", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "security_senders",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_security_senders_token_hash"),
    )
    op.create_index("ix_security_senders_name_channel", "security_senders", ["name", "channel"])


def downgrade() -> None:
    op.drop_index("ix_security_senders_name_channel", table_name="security_senders")
    op.drop_table("security_senders")
    with op.batch_alter_table("store_documents", schema=None) as batch_op:
        batch_op.drop_column("filed_by")
    with op.batch_alter_table("journal_messages", schema=None) as batch_op:
        batch_op.drop_column("sender")
