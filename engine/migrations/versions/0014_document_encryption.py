"""document encryption: the key id beside each document's sealed bytes

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-12 09:00:00

Existing rows keep their plaintext with key_id NULL: they stay readable, and
``aiguillage keys rotate`` encrypts them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
# record_personal_documents comes from 0011, on a branch of its own since 0008.
depends_on = "0011"


def upgrade() -> None:
    for table in ("store_documents", "record_personal_documents"):
        op.add_column(table, sa.Column("key_id", sa.String(length=16), nullable=True))
        # The start-up check and `keys list` read the key ids in use from the index alone.
        op.create_index(op.f(f"ix_{table}_key_id"), table, ["key_id"], unique=False)


def downgrade() -> None:
    for table in ("record_personal_documents", "store_documents"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_key_id"))
            batch_op.drop_column("key_id")
