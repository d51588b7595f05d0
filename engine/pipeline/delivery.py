"""The destination interface: one method, ``write``; and what the record store is handed
besides the message: the operation the transform stage mapped and the patient the identify
stage filed it under."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from sqlalchemy import Connection

from engine.cda.conformance import Schema
from engine.cda.standalone import CdaPayload
from engine.hl7v2.reader import Message
from engine.identity.rules import IdentityPolicy
from engine.transforms.map_hl7 import StoreOperation

#: What a channel receives: an HL7 v2 message, or a CDA document received alone.
Payload = Message | CdaPayload


@dataclass(frozen=True, slots=True)
class Filed:
    """A record-store target's part of a message: the operation the transform stage mapped
    (documents read and checked) and the patient the identify stage filed it under."""

    operation: StoreOperation
    patient_id: int


@dataclass(slots=True)
class Delivery:
    """One message handed to one destination.

    ``conn`` is the pipeline's open transaction: a destination writing to the engine's database
    writes there, so that its writes and the message's end state commit together.
    """

    conn: Connection
    message_id: int
    channel: str
    message: Payload
    raw: bytes
    now: datetime
    #: ``business_ack``: a ZAM^Z01 answering message ``message_id``, not the message itself.
    kind: Literal["message", "business_ack"] = "message"
    #: The sender identity journaled with the message (``journal_messages.sender``): the
    #: record store files documents under it, and checks it before a replacement or deletion.
    sender: str = ""
    #: For the record store: what the transform and identify stages made of ``message``.
    filed: Filed | None = None


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Deployment settings a destination may need when it is built."""

    #: Accept INS with the test and demo OIDs (``engine.identity.accept_test_ins``).
    accept_test_ins: bool = False
    #: Identities sharing the ownership of documents (``engine.document_owner_groups``).
    document_owner_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordRules:
    """What the transform and identify stages apply for a record-store destination: the
    identity policy and the checks on CDA documents."""

    policy: IdentityPolicy = field(default_factory=IdentityPolicy)
    xsd: Schema | None = None
    cisis_header: bool = False


@runtime_checkable
class RecordDestination(Protocol):
    """A destination filing into the record store: the pipeline maps and identifies the
    messages routed to it (the transform and identify stages) before it writes them."""

    rules: RecordRules


class Destination(Protocol):
    name: str
    #: True when ``write`` only writes through ``Delivery.conn``: a failed attempt's rollback
    #: undoes it, so it must run again on the retry.
    transactional: bool

    def write(self, delivery: Delivery) -> None:
        """Deliver or raise an :class:`engine.errors.EngineError` (transient or permanent)."""

    def close(self) -> None:
        """Release what it holds open (a broker connection); called once, at shutdown."""
