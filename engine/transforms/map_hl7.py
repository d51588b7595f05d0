"""From an HL7 v2 message to the record store operation it asks for (pure: no database).

ADT messages upsert the patient and, when they are about a visit, its encounter; ``A03`` closes
the encounter; ``ORU^R01`` upserts the patient and adds the results. See :data:`SUPPORTED_TYPES`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from engine.cda.document import ReadDocument
from engine.errors import UnsupportedMessageType, ValidationError
from engine.hl7v2.embedded_documents import (
    DocumentRecord,
    carries_documents,
    extract_documents,
)
from engine.hl7v2.reader import Message
from engine.identity.hl7 import merged_identity
from engine.identity.model import Identity
from engine.transforms.map_adt import (
    EncounterRecord,
    PatientRecord,
    extract_encounter,
    extract_patient,
)
from engine.transforms.map_cda_entries import DocumentEntries
from engine.transforms.map_consent import RecordConsent, record_consent
from engine.transforms.map_oru import ObservationRecord, OrderRecord, extract_observations

__all__ = [
    "SUPPORTED_TYPES",
    "EncounterRecord",
    "ObservationRecord",
    "OrderRecord",
    "PatientRecord",
    "StoreOperation",
    "extract_encounter",
    "extract_observations",
    "extract_patient",
    "map_message",
]

OperationKind = Literal[
    "upsert_patient",
    "close_encounter",
    "add_results",
    "add_documents",
    "merge_patients",
    "change_identity",
]

#: ADT events that update the patient and the encounter of PV1 (admit, transfer, register,
#: update, change of class, cancellations of admit and of discharge).
_VISIT_EVENTS = frozenset({"A01", "A02", "A04", "A06", "A07", "A08", "A11", "A13"})
#: ADT events about the person only: a PV1 they carry does not create an encounter
#: (A05 pre-admits: the visit has not started; A28/A31 add/update person information).
_PERSON_EVENTS = frozenset({"A05", "A28", "A31"})
#: Encounter status an event sets (other visit events keep the stored one).
_STATUS_BY_EVENT = {"A11": "cancelled", "A13": "open"}

#: Identity events that name a second identity in MRG-1: A40 merges the patient of MRG-1 into
#: the patient of PID; A47 changes the identifier list (MRG-1 holds the former one).
_MRG_EVENTS: dict[str, OperationKind] = {"A40": "merge_patients", "A47": "change_identity"}

#: Documents (DOMAIN.md §3): initial, replacement, deletion.
_DOCUMENT_EVENTS = frozenset({"T02", "T10", "T04"})

SUPPORTED_TYPES: frozenset[str] = frozenset(
    {f"ADT^{t}" for t in (*_VISIT_EVENTS, *_PERSON_EVENTS, *_MRG_EVENTS, "A03")}
    | {f"MDM^{t}" for t in _DOCUMENT_EVENTS}
    | {"ORU^R01"}
)


@dataclass(frozen=True, slots=True)
class StoreOperation:
    """What applying one message to the record store means."""

    kind: OperationKind
    patient: PatientRecord
    encounter: EncounterRecord | None = None
    observations: tuple[ObservationRecord, ...] = ()
    #: MRG-1 of A40/A47: the absorbed or former identity.
    previous: Identity | None = None
    documents: tuple[DocumentRecord, ...] = ()
    #: The documents read and checked, one per record of ``documents`` (the transform stage:
    #: :func:`engine.transforms.map_store.map_for_store`).
    read: tuple[ReadDocument, ...] = ()
    #: What each read document holds for reading at a glance, one per ``read``.
    entries: tuple[DocumentEntries, ...] = ()
    #: What an ADT says of the patient's record (death, ZFA consent): applied after filing.
    consent: RecordConsent | None = None

    @property
    def from_identity_source(self) -> bool:
        """ADT messages may create and update identities; results and documents never do."""
        return self.kind not in ("add_results", "add_documents")


def map_message(msg: Message) -> StoreOperation:
    """The store operation for ``msg``; raises UnsupportedMessageType for other MSH-9 types,
    UnknownPatient without a usable PID-3, ValidationError for an A03 naming no visit."""
    # MSH-9.1 and MSH-9.2 (Message.message_type and .trigger), its field split once.
    msh9 = msg.msh.components(9)
    message_type = msh9[0] if msh9 else ""
    trigger = msh9[1] if len(msh9) > 1 else ""
    kind = f"{message_type}^{trigger}"
    if kind not in SUPPORTED_TYPES:
        raise UnsupportedMessageType(f"the record store does not map {kind or 'empty MSH-9'}")
    patient = extract_patient(msg)
    op = _operation(msg, message_type, trigger, kind, patient)
    said = record_consent(msg) if message_type == "ADT" else None
    if said is not None:  # any ADT may say what becomes of the record (the DMP's rules)
        op = dataclasses.replace(op, consent=said)
    return op


def _operation(
    msg: Message, message_type: str, trigger: str, kind: str, patient: PatientRecord
) -> StoreOperation:
    """The operation of a supported message type, before what it says of the record."""
    # is_document_message, for the supported types: any MDM, an ORU^R01 carrying a CDA.
    if message_type == "MDM" or (kind == "ORU^R01" and carries_documents(msg)):
        return StoreOperation("add_documents", patient, documents=extract_documents(msg))
    if kind == "ORU^R01":
        return StoreOperation("add_results", patient, None, tuple(extract_observations(msg)))
    if trigger in _MRG_EVENTS:
        previous = merged_identity(msg)
        if previous is None:
            raise ValidationError(f"ADT^{trigger} names no identifier in MRG-1")
        return StoreOperation(_MRG_EVENTS[trigger], patient, previous=previous)
    if trigger == "A03":
        encounter = extract_encounter(msg, closing=True)
        if encounter is None:
            raise ValidationError("ADT^A03 names no visit (PV1-19 and PID-18 are empty)")
        return StoreOperation("close_encounter", patient, encounter)
    encounter = extract_encounter(msg, closing=False) if trigger in _VISIT_EVENTS else None
    if encounter is not None and trigger in _STATUS_BY_EVENT:
        status = _STATUS_BY_EVENT[trigger]
        if status == "open":  # A13 cancels the discharge
            encounter = dataclasses.replace(
                encounter, status=status, discharged_ts="", discharged_at=None
            )
        else:
            encounter = dataclasses.replace(encounter, status=status)
    return StoreOperation("upsert_patient", patient, encounter)
