"""journal: the (state, id) index leaves the delivered messages out

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 22:30:00

``ix_journal_messages_state_id`` held an entry for every message; delivering one moved its
entry from ``received`` to ``delivered`` (on PostgreSQL: a new entry for the new row
version, the old one dead until VACUUM). No query reads the delivered messages by this index:
the claim seeks the pending states (SQLite), the console lists dead letters, held, review,
filtered and discarded messages; a search for delivered messages, most of the journal, reads
it newest first. The index now holds every state but ``delivered``, so that delivering a
message only takes its entry out, and the index stays the size of what is not delivered. The
predicate is ORed equalities (not ``IN`` nor ``<>``): SQLite uses a partial index only for a
query whose terms imply its WHERE, and it proves that ``state = 'held'`` (also as a bound
value) implies an OR of equalities.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

NOT_DELIVERED = (
    "state = 'received' OR state = 'retrying' OR state = 'filtered' "
    "OR state = 'dead_lettered' OR state = 'discarded' OR state = 'held' OR state = 'review'"
)


def upgrade() -> None:
    op.drop_index("ix_journal_messages_state_id", table_name="journal_messages")
    op.create_index(
        "ix_journal_messages_state_id",
        "journal_messages",
        ["state", "id"],
        postgresql_where=sa.text(NOT_DELIVERED),
        sqlite_where=sa.text(NOT_DELIVERED),
    )


def downgrade() -> None:
    op.drop_index("ix_journal_messages_state_id", table_name="journal_messages")
    op.create_index("ix_journal_messages_state_id", "journal_messages", ["state", "id"])
