"""The ``record_store`` destination: patients, encounters, results and documents in the
engine's database.

It writes what the earlier stages made of the message: the store operation the transform stage
mapped and the patient the identify stage filed it under (``Delivery.filed``); every write goes
through :mod:`engine.store`. Writes run inside the pipeline's transaction (``Delivery.conn``):
the caller commits them with the message's end state, which is what makes delivery
exactly-once. The hot path (ORU^R01 for a known patient) costs two or three statements: the
identifier lookup (one per INS, one for the local identifiers, in the identify stage), one
executemany of the observations.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import Connection

from engine.channels.destinations import DocumentChecks, RecordStoreConfig
from engine.errors import TransformError
from engine.hl7v2.reader import Message
from engine.identity.rules import IdentityPolicy
from engine.pipeline.delivery import BuildContext, Delivery, Filed, RecordRules
from engine.pipeline.identify.operation import identify_patient
from engine.pipeline.identify.patient_filing import Filing
from engine.store.ownership import UNKNOWN_FILER, Filer, OwnerGroups
from engine.store.record_writes import write_filed
from engine.transforms.map_hl7 import StoreOperation
from engine.transforms.map_store import map_for_store, with_documents

__all__ = ["RecordStore", "RecordStoreConfig"]


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
        checks = checks or DocumentChecks()
        #: What the pipeline's transform and identify stages apply to messages routed here.
        self.rules = RecordRules(
            policy or IdentityPolicy(),
            None if checks.xsd == "none" else checks.xsd,
            checks.cisis_header,
        )
        self.owners = owners or OwnerGroups()

    def close(self) -> None:
        """Nothing held open between messages."""

    def write(self, delivery: Delivery) -> None:
        filed = delivery.filed
        if filed is None:  # the pipeline identifies every message routed to a record store
            raise TransformError("the record store got a message the identify stage did not file")
        msg = delivery.message
        adt = msg if isinstance(msg, Message) and msg.message_type == "ADT" else None
        filer = Filer(delivery.sender, self.owners)
        write_filed(
            delivery.conn,
            delivery.message_id,
            filed.operation,
            filed.patient_id,
            delivery.now,
            filer,
            adt,
        )

    def file(self, delivery: Delivery) -> int:
        """The transform, identify and write steps of one delivery outside a pipeline (tests,
        benches), in ``delivery.conn``; returns the patient's id. In the engine the pipeline's
        stages map and identify, and :meth:`write` only writes."""
        rules = self.rules
        op = map_for_store(delivery.message, rules.xsd, rules.cisis_header)
        filing = Filing(rules.policy)
        patient_id = identify_patient(delivery.conn, filing, delivery.message_id, op, delivery.now)
        self.write(dataclasses.replace(delivery, filed=Filed(op, patient_id)))
        return patient_id

    def apply(
        self,
        conn: Connection,
        message_id: int,
        op: StoreOperation,
        now: datetime,
        filer: Filer | None = None,
    ) -> int:
        """The transform, identify and write steps of one operation outside a pipeline (tests,
        benches), in the caller's transaction; returns the patient's id. Documents are filed
        under ``filer`` (an unknown one when None: it may change only legacy versions)."""
        rules = self.rules
        op = with_documents(op, rules.xsd, rules.cisis_header)
        patient_id = identify_patient(conn, Filing(rules.policy), message_id, op, now)
        write_filed(conn, message_id, op, patient_id, now, filer or Filer(UNKNOWN_FILER))
        return patient_id
