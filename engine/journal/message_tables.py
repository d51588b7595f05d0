"""Journal tables."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from engine.db import metadata

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
Id = BigInteger().with_variant(Integer(), "sqlite")


class State(StrEnum):
    """A message's state. ``filtered``, ``delivered``, ``dead_lettered`` and ``discarded`` end it.

    ``held`` waits for its patient to become known (an ADT releases it, error 902); ``review``
    waits for an operator to settle an identity problem (903-905). Neither is dead.

    ``processing`` is not written to the journal: the pipeline applies a message and records its
    end state in one transaction, so a crash mid-way leaves it ``received`` and it runs again.
    """

    RECEIVED = "received"
    RETRYING = "retrying"
    FILTERED = "filtered"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    DISCARDED = "discarded"
    HELD = "held"
    REVIEW = "review"


PENDING_STATES = (State.RECEIVED, State.RETRYING)
#: Every state but ``delivered``, the bulk of the journal: the rows of
#: ``ix_journal_messages_state_id`` (migration 0018), so that delivering a message takes its
#: entry out instead of moving it (on PostgreSQL the delivered row version gets none). As
#: ORed equalities, which SQLite proves a ``state = ?`` query implies (an ``IN`` or ``<>`` it
#: never does), with the state bound or literal.
_NOT_DELIVERED = text(" OR ".join(f"state = '{s.value}'" for s in State if s != State.DELIVERED))


messages = Table(
    "journal_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("peer", String(128), nullable=False, default=""),
    # Who sent it, as the source proved it: "cert:<subject>", "token:<name>"; else what it
    # declares: "<channel>:<MSH-3>^<MSH-4>" (a document alone: "<channel>").
    Column("sender", String(255)),
    Column("sender_app", String(255)),
    Column("sender_facility", String(255)),
    Column("control_id", String(255)),
    Column("message_type", String(16)),
    Column("trigger", String(16)),
    Column("patient_key", String(255)),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("ack_code", String(2), nullable=False),
    Column("charset", String(32), nullable=False, default=""),
    Column("size", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("delivered_to", Text, nullable=False, default=""),
    Column("error_stage", String(32)),
    Column("error_code", String(64)),
    Column("error_class", String(64)),
    Column("error_reason", Text),
    #: Transport metadata as JSON (AMQP message id, correlation id, headers, routing key).
    Column("properties", Text),
    #: The HL7 v2 batch a message came in (BHS-11, else FHS-11, else a generated id) and its
    #: position there (1-based); NULL for a message received alone.
    Column("batch_id", String(255)),
    Column("batch_position", Integer),
    # Control id first: it serves the resend lookup and `aiguillage trace` by MSH-10.
    Index(
        "uq_journal_messages_sender_control_id",
        "control_id",
        "channel",
        "sender_app",
        "sender_facility",
        "content_hash",
        unique=True,
    ),
    Index(
        "ix_journal_messages_state_id",
        "state",
        "id",
        postgresql_where=_NOT_DELIVERED,
        sqlite_where=_NOT_DELIVERED,
    ),
    Index("ix_journal_messages_patient_key", "patient_key"),
    # The claim's: pending rows only (migration 0017). On PostgreSQL an update to an end state
    # leaves the row's old entry in every index until VACUUM; the claim scanned those dead
    # entries in (state, id) with a bitmap heap scan that never marks them dead: a cost that
    # grew with the journal. A plain index scan of this one marks them as it passes.
    Index(
        "ix_journal_messages_pending",
        "id",
        postgresql_where=text("state IN ('received', 'retrying')"),
        sqlite_where=text("state IN ('received', 'retrying')"),
    ),
    Index(
        "ix_journal_messages_batch_id",
        "batch_id",
        postgresql_where=text("batch_id IS NOT NULL"),
        sqlite_where=text("batch_id IS NOT NULL"),
    ),
)

events = Table(
    "journal_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("journal_messages.id"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("stage", String(32)),
    Column("code", String(64)),
    Column("reason", Text),
    Column("actor", String(128)),
)

#: What a held message waits for: ``ins:<matricule>`` or ``local:<value>^<authority>`` keys.
holds = Table(
    "journal_holds",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("journal_messages.id"), nullable=False, index=True),
    Column("key", String(300), nullable=False, index=True),
)

#: What the engine sends on its own after a message's end state (the ZAM^Z01 business
#: acknowledgement): written in the same transaction as that end state, sent after the commit,
#: retried with backoff until the destination takes it.
outbox = Table(
    "journal_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("journal_messages.id"), nullable=False, index=True),
    Column("channel", String(64), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_journal_outbox_due", "sent_at", "next_attempt_at"),
)
