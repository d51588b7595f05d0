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

from engine.channels.destinations import DocumentChecks, RecordStoreConfig
from engine.errors import TransformError
from engine.identity.rules import IdentityPolicy
from engine.pipeline.delivery import BuildContext, Delivery, RecordRules
from engine.store.ownership import Filer, OwnerGroups
from engine.store.record_writes import write_filed

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
        filer = Filer(delivery.sender, self.owners)
        write_filed(
            delivery.conn,
            delivery.message_id,
            filed.operation,
            filed.patient_id,
            delivery.now,
            filer,
        )
