"""A47, the change of a patient's identifier list: MRG-1 holds the former identifier.

With ``""`` in the PID-3 INS slot and the old INS in MRG-1 the INS is removed (the identity is
demoted); a new qualified INS replaces it. A former local identifier (in MRG-1, not in PID-3)
is replaced by the new ones of PID-3: it no longer resolves, so a later result naming only it
is held (902) like one for an unknown patient, never filed under a patient who gave it up. The
identity history keeps the former identifiers (event ``identifiers_replaced``). (A40 merges are
in :mod:`engine.pipeline.identify.merge`.)
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import Connection

from engine.errors import IdentityConflict, PatientNotKnown
from engine.identity.model import LocalId
from engine.identity.rules import decide_ins
from engine.journal import holds
from engine.pipeline.identify.merge import previous_patient
from engine.pipeline.identify.patient_filing import Filing, hold_keys, qualify, status_of
from engine.store import patients
from engine.store.patients import StoredPatient, identity_keys
from engine.transforms.map_hl7 import StoreOperation

log = structlog.get_logger("engine.identity")


def change_identity(
    conn: Connection, filing: Filing, message_id: int, op: StoreOperation, now: datetime
) -> int:
    """A47: the identifier list changed; MRG-1 holds the former identifier."""
    assert op.previous is not None
    target = previous_patient(conn, op.previous)
    if target is None:  # e.g. the A47 overtook the registration: wait for it
        raise PatientNotKnown(
            "A47: no patient holds the former identifier of MRG-1 yet: held until an ADT "
            "makes it known",
            keys=identity_keys([i.value for i in op.previous.ins], op.previous.local_ids),
        )
    identity = op.patient.identity
    decision = decide_ins(identity, filing.policy)
    if target.ins and target.ins in {i.value for i in op.previous.ins}:
        new = decision.preferred
        if new is None:
            _demote(conn, target, status_of(identity) or "PROV", message_id, now)
        elif new.value != target.ins:
            holder = patients.by_ins(conn, [new.value])
            if holder and target.id not in holder:
                raise IdentityConflict(
                    "A47: the new INS belongs to another patient", [target.id, *holder]
                )
            qualify(conn, target, op.patient, new, message_id, now)
    new_ids = patients.new_local_ids(conn, target.id, identity.local_ids)
    owners = patients.lookup(conn, [], tuple(new_ids))[1]
    if owners.keys() - {target.id}:
        raise IdentityConflict(
            "A47: a new local identifier belongs to another patient", [target.id, *owners]
        )
    patients.add_local_ids(conn, target.id, new_ids, message_id, now)
    removed = patients.remove_local_ids(conn, target.id, op.previous.local_ids, identity.local_ids)
    _record_ids(conn, target.id, message_id, now, removed, new_ids)
    holds.release(conn, hold_keys(identity, decision), now)
    return target.id


def _demote(
    conn: Connection, target: StoredPatient, status: str, message_id: int, now: datetime
) -> None:
    """The INS is withdrawn (A47 with ``""`` in its slot): the identity is no longer qualified."""
    before = {
        "ins": target.ins,
        "ins_oid": target.ins_oid,
        "identity_status": target.identity_status,
    }
    after = {"ins": "", "ins_oid": "", "identity_status": status}
    detail = {"before": before, "after": after}
    patients.change(conn, target.id, after, message_id, now, "ins_removed", detail)
    log.info("ins_removed", message_id=message_id, patient_id=target.id)


def _record_ids(
    conn: Connection,
    patient_id: int,
    message_id: int,
    now: datetime,
    removed: list[dict[str, str]],
    added: list[LocalId],
) -> None:
    """One history line with the former and the new identifiers (undoable by hand)."""
    if not (removed or added):
        return
    new = [{f: getattr(a, f) for f in patients.ID_FIELDS} for a in added]
    detail = {"removed": removed, "added": new}
    patients.record(conn, patient_id, message_id, now, "identifiers_replaced", detail)
    log.info(
        "identifiers_replaced",
        message_id=message_id,
        patient_id=patient_id,
        removed=len(removed),
        added=len(new),
    )
