"""journal growth: a partial index on the pending messages, for the claim

Revision ID: 0017
Revises: 0013
Create Date: 2026-12-03 18:00:00

On PostgreSQL a row's update to ``delivered`` leaves its ``('received', id)`` entry in
``ix_journal_messages_state_id`` until VACUUM; the claim's ``state = 'received' ORDER BY id``
was answered by a bitmap scan over every such entry (9,039 dead entries and 2,260 heap pages
for no row after 10,000 messages), a cost growing with the journal. The partial index holds
the pending rows only and is read by a plain index scan, which marks dead entries as it
passes. Building it reads the journal once, under a lock that holds writes back meanwhile
(migrations run before the engine listens).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0013"
branch_labels = None
depends_on = None

PENDING = "state IN ('received', 'retrying')"


def upgrade() -> None:
    op.create_index(
        "ix_journal_messages_pending",
        "journal_messages",
        ["id"],
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_journal_messages_pending", table_name="journal_messages")
