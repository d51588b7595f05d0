"""record store: the versions of a document found by index, not by reading every document of
its patient

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 14:15:00

Filing a document asks whether a later version that replaces it is already stored (a late
original): ``replaces = <its id>``, or ``set_id = <its set> AND version > <its version>``.
Only ``(patient_id, status)`` served that, so each filing read every document of the patient:
a patient's thousandth lab report read the 999 before it (issue 11: 7% of the pipeline's time
on the CDA benchmark, growing with the record). Both lookups now have an index of their own.
Not partial: the columns hold ``""`` when absent, never NULL, and a predicate ``<> ''`` is
one SQLite cannot prove a bound ``= ?`` implies.
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_store_documents_replaces", "store_documents", ["replaces"])
    op.create_index("ix_store_documents_set_id_version", "store_documents", ["set_id", "version"])


def downgrade() -> None:
    op.drop_index("ix_store_documents_set_id_version", table_name="store_documents")
    op.drop_index("ix_store_documents_replaces", table_name="store_documents")
