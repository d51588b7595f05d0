"""The ``record_store`` destination: patients, encounters and results in the engine's database.

Writes run inside the pipeline's transaction (``Delivery.conn``): the caller commits them with
the message's end state, which is what makes delivery exactly-once. Which patient a message is
filed under is the identity rules' business (:mod:`engine.pipeline.identify.patient_filing`). The
hot path
(ORU^R01 for a known patient) costs two or three statements: the identifier lookup (one per
INS, one for the local identifiers), one executemany of the observations. The read helpers live
in :mod:`engine.store.record_lookups` and are re-exported here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from engine.cda.conformance import Schema
from engine.cda.standalone import CdaPayload
from engine.channels.destinations import DocumentChecks, RecordStoreConfig
from engine.errors import DocumentError
from engine.hl7v2.embedded_documents import Action, DocumentRecord
from engine.identity.rules import IdentityPolicy
from engine.pipeline.delivery import BuildContext, Delivery
from engine.pipeline.identify.events import change_identity
from engine.pipeline.identify.merge import merge
from engine.pipeline.identify.patient_filing import Filing
from engine.store import batch, consent
from engine.store.cda_filing import ReadDocument, check_same_patient, read_document, store_document
from engine.store.observations import add_observations
from engine.store.ownership import UNKNOWN_FILER, Filer, OwnerGroups
from engine.store.record_core import encounters
from engine.store.record_lookups import (
    counts,
    find_patient,
    patient_encounters,
    patient_observations,
)
from engine.transforms.map_adt import PatientRecord
from engine.transforms.map_hl7 import (
    EncounterRecord,
    StoreOperation,
    map_message,
)

__all__ = [
    "RecordStore",
    "RecordStoreConfig",
    "counts",
    "find_patient",
    "patient_encounters",
    "patient_observations",
]


def build(config: RecordStoreConfig, name: str, context: BuildContext) -> RecordStore:
    """The record store destination ``name`` of a channel."""
    policy = IdentityPolicy(accept_test_ins=context.accept_test_ins, require_ins=config.require_ins)
    return RecordStore(name, policy, config.documents, OwnerGroups(context.document_owner_groups))


class RecordStore:
    """Runtime of the record store destination."""

    transactional = True

    def __init__(
        self,
        name: str = "record_store",
        policy: IdentityPolicy | None = None,
        checks: DocumentChecks | None = None,
        owners: OwnerGroups | None = None,
    ) -> None:
        self.name = name
        self.filing = Filing(policy or IdentityPolicy())
        self.checks = checks or DocumentChecks()
        self.owners = owners or OwnerGroups()

    def close(self) -> None:
        """Nothing held open between messages."""

    def write(self, delivery: Delivery) -> None:
        filer = Filer(delivery.sender, self.owners)
        if isinstance(delivery.message, CdaPayload):
            self._standalone(
                delivery.conn, delivery.message_id, delivery.message, delivery.now, filer
            )
            return
        op = map_message(delivery.message)
        patient_id = self.apply(delivery.conn, delivery.message_id, op, delivery.now, filer)
        if delivery.message.message_type == "ADT":  # consent, closure, death (the DMP's rules)
            consent.apply_adt(
                delivery.conn, patient_id, delivery.message, delivery.sender, delivery.now
            )
            batch.settle(delivery.conn)

    def apply(
        self,
        conn: Connection,
        message_id: int,
        op: StoreOperation,
        now: datetime,
        filer: Filer | None = None,
    ) -> int:
        """Apply ``op`` in the caller's transaction; returns the patient's id. Documents are
        filed under ``filer`` (an unknown one when None: it may change only legacy versions).

        In a pipeline batch, results of known patients (the hot path) add their observations to
        the batch's one insert; any other operation first flushes what the batch gathered and
        forgets its patient lookups, and forgets them again once it has written."""
        if op.kind != "add_results":
            batch.settle(conn)
            patient_id = self._apply(conn, message_id, op, now, filer)
            batch.settle(conn)
            return patient_id
        return self._apply(conn, message_id, op, now, filer)

    def _apply(
        self,
        conn: Connection,
        message_id: int,
        op: StoreOperation,
        now: datetime,
        filer: Filer | None,
    ) -> int:
        if op.kind == "add_documents":
            return self._documents(conn, message_id, op, now, filer or Filer(UNKNOWN_FILER))
        if op.kind == "merge_patients":
            patient_id = merge(conn, self.filing, message_id, op, now)
        elif op.kind == "change_identity":
            patient_id = change_identity(conn, self.filing, message_id, op, now)
        else:
            patient_id = self.filing.patient_for(
                conn, message_id, op.patient, now, adt=op.from_identity_source
            )
        if op.encounter is not None:
            _upsert_encounter(conn, patient_id, message_id, op.encounter, now)
        add_observations(conn, op.observations, patient_id, message_id, now)
        return patient_id

    def _documents(
        self, conn: Connection, message_id: int, op: StoreOperation, now: datetime, filer: Filer
    ) -> int:
        if not op.documents:
            raise DocumentError(
                "no CDA in the message (a document sent by reference is not fetched)"
            )
        read = [read_document(r, *self._checks) for r in op.documents]
        return self._file(conn, message_id, op.patient, read, now, filer)

    def _standalone(
        self, conn: Connection, message_id: int, doc: CdaPayload, now: datetime, filer: Filer
    ) -> int:
        """A document received alone: its recordTarget is the patient, and what it does is
        said by its relatedDocument (a replacement) or nothing (a new document)."""
        action: Action = "replace" if doc.header.replaces else "initial"
        record = DocumentRecord(content=doc.raw, action=action)
        read = read_document(record, *self._checks, root=doc.root)
        batch.settle(conn)  # a replacement may touch rows of an earlier document
        return self._file(conn, message_id, PatientRecord(read.target), [read], now, filer)

    @property
    def _checks(self) -> tuple[Schema | None, bool]:
        return (None if self.checks.xsd == "none" else self.checks.xsd), self.checks.cisis_header

    def _file(
        self,
        conn: Connection,
        message_id: int,
        patient: PatientRecord,
        read: list[ReadDocument],
        now: datetime,
        filer: Filer,
    ) -> int:
        sender = patient.identity
        patient_id = self.filing.patient_for(
            conn,
            message_id,
            patient,
            now,
            adt=False,
            confirm=lambda pid: check_same_patient(conn, pid, sender, read),
        )
        for document in read:
            store_document(conn, patient_id, message_id, document, now, filer)
        return patient_id


def _upsert_encounter(
    conn: Connection, patient_id: int, message_id: int, enc: EncounterRecord, now: datetime
) -> None:
    e = encounters.c
    existing = conn.execute(
        select(e.id).where(
            e.patient_id == patient_id,
            e.visit_number == enc.visit_number,
            e.visit_authority == enc.visit_authority,
        )
    ).scalar()
    status = enc.status
    if status is None and enc.discharged_at is not None:
        status = "closed"
    values: dict[str, Any] = {
        k: v
        for k, v in (
            ("patient_class", enc.patient_class),
            ("location", enc.location),
            ("attending", enc.attending),
            ("admitted_at", enc.admitted_at),
            ("discharged_at", enc.discharged_at),
        )
        if v
    }
    if existing is None:
        conn.execute(
            encounters.insert().values(
                **values,
                patient_id=patient_id,
                visit_number=enc.visit_number,
                visit_authority=enc.visit_authority,
                status=status or "open",
                created_at=now,
                updated_at=now,
                last_message_id=message_id,
            )
        )
        return
    if status is not None:
        values["status"] = status
    if enc.status == "open":  # a cancelled discharge (A13)
        values["discharged_at"] = None
    conn.execute(
        encounters.update()
        .where(e.id == existing)
        .values(**values, updated_at=now, last_message_id=message_id)
    )
