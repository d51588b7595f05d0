"""The identify stage's decision for one store operation: the patient it is filed under.

ADT messages create, update, merge (A40) or re-identify (A47) patients; results and documents
are filed under a known patient only (a document's recordTarget must name the same one), else
held (902) or sent to identity review. The rules are :mod:`engine.identity`'s; the reads and
writes go through :mod:`engine.store`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from engine.pipeline.identify.events import change_identity
from engine.pipeline.identify.merge import merge
from engine.pipeline.identify.patient_filing import Filing
from engine.pipeline.identify.prefetch import refetch
from engine.store import batch
from engine.store.cda_filing import check_same_patient
from engine.transforms.map_hl7 import StoreOperation


def identify_patient(
    conn: Connection, filing: Filing, message_id: int, op: StoreOperation, now: datetime
) -> int:
    """The id of the patient ``op`` is filed under; raises IdentityError (held or review).

    In a pipeline batch, results (the hot path) use the batch's patient lookups; anything else
    may change a patient or read rows the batch still holds: the batch settles first."""
    if op.kind != "add_results":
        batch.settle(conn)
    else:  # the batch's patients again, if a patient changed since they were fetched
        refetch(conn, message_id)
    if op.kind == "merge_patients":
        return merge(conn, filing, message_id, op, now)
    if op.kind == "change_identity":
        return change_identity(conn, filing, message_id, op, now)
    if op.kind == "add_documents":
        sender, read = op.patient.identity, list(op.read)
        return filing.patient_for(
            conn,
            message_id,
            op.patient,
            now,
            adt=False,
            confirm=lambda pid: check_same_patient(conn, pid, sender, read),
        )
    return filing.patient_for(conn, message_id, op.patient, now, adt=op.from_identity_source)
