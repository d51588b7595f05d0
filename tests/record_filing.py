"""The record store's transform, identify and write steps for one message outside a pipeline
(tests and benches that file a patient or a document directly, in the caller's transaction).
In the engine the pipeline's stages map (``MapForStore``) and identify (``Identify``), and the
destination (``RecordStore.write``) only writes."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import Connection

from engine.adapters.record_store import RecordStore
from engine.pipeline.delivery import Delivery, Filed
from engine.pipeline.identify.operation import identify_patient
from engine.pipeline.identify.patient_filing import Filing
from engine.store.ownership import UNKNOWN_FILER, Filer
from engine.store.record_writes import write_filed
from engine.transforms.map_hl7 import StoreOperation
from engine.transforms.map_store import map_for_store, with_documents


def file_delivery(store: RecordStore, delivery: Delivery) -> int:
    """Map, identify and write one delivery with ``store``'s rules, in ``delivery.conn``;
    the patient's id."""
    rules = store.rules
    op = map_for_store(delivery.message, rules.xsd, rules.cisis_header)
    patient_id = identify_patient(
        delivery.conn, Filing(rules.policy), delivery.message_id, op, delivery.now
    )
    store.write(dataclasses.replace(delivery, filed=Filed(op, patient_id)))
    return patient_id


def apply_operation(
    store: RecordStore,
    conn: Connection,
    message_id: int,
    op: StoreOperation,
    now: datetime,
    filer: Filer | None = None,
) -> int:
    """Identify and write a mapped operation (its documents read with ``store``'s rules), in
    the caller's transaction; the patient's id. Documents are filed under ``filer`` (an unknown
    one when None: it may change only legacy versions)."""
    rules = store.rules
    op = with_documents(op, rules.xsd, rules.cisis_header)
    patient_id = identify_patient(conn, Filing(rules.policy), message_id, op, now)
    write_filed(conn, message_id, op, patient_id, now, filer or Filer(UNKNOWN_FILER))
    return patient_id
