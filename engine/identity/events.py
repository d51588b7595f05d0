"""ADT identity events that name a second identity (MRG-1): A40 merge, its undo, A47.

A40 moves the absorbed patient's identifiers, encounters and observations to the survivor; the
absorbed row stays, ``merged_into`` the survivor, so its identifiers still resolve. The rows
moved are recorded so that an operator can undo the merge. Two patients with different INS are
never merged: that is an identity conflict for a human. A47 removes the INS (``""`` in the PID-3
INS slot, the old INS in MRG-1: the identity is demoted) or replaces it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, insert, select, update

from engine.errors import IdentityConflict, PatientNotKnown
from engine.identity import patients
from engine.identity.filing import Filing, hold_keys, qualify, status_of
from engine.identity.model import Identity
from engine.identity.patients import StoredPatient, identity_keys
from engine.identity.rules import decide_ins
from engine.journal import holds
from engine.store.models import encounters, merges, observations, patient_identifiers
from engine.transforms.map_hl7 import StoreOperation

log = structlog.get_logger("engine.identity")

#: Tables whose rows follow a merged patient.
_MOVED = {
    "identifiers": patient_identifiers,
    "encounters": encounters,
    "observations": observations,
}


def _previous(conn: Connection, previous: Identity) -> StoredPatient | None:
    by_ins, by_local = patients.lookup(conn, [i.value for i in previous.ins], previous.local_ids)
    found = {**by_local, **by_ins}
    if len(found) > 1:
        raise IdentityConflict("MRG-1 names several patients", sorted(found))
    return next(iter(found.values()), None)


def merge(
    conn: Connection, filing: Filing, message_id: int, op: StoreOperation, now: datetime
) -> int:
    """A40: merge MRG-1's patient into PID's; returns the survivor's id."""
    assert op.previous is not None
    absorbed = _previous(conn, op.previous)
    survivor_id = filing.patient_for(conn, message_id, op.patient, now, adt=True)
    if absorbed is None or absorbed.id == survivor_id:
        log.info("merge_nothing_to_absorb", message_id=message_id, patient_id=survivor_id)
        return survivor_id
    survivor = patients.by_id(conn, survivor_id)
    assert survivor is not None
    if absorbed.ins and survivor.ins and absorbed.ins != survivor.ins:
        raise IdentityConflict(
            "A40 would merge two patients with different INS", [survivor.id, absorbed.id]
        )
    moved: dict[str, Any] = {}
    for name, table in _MOVED.items():
        ids = list(
            conn.execute(select(table.c.id).where(table.c.patient_id == absorbed.id)).scalars()
        )
        if ids:
            conn.execute(update(table).where(table.c.id.in_(ids)).values(patient_id=survivor.id))
        moved[name] = ids
    absorbed_changes: dict[str, Any] = {"merged_into": survivor.id}
    if absorbed.ins and not survivor.ins:  # the INS goes with the person
        moved["ins"] = {"ins": absorbed.ins, "ins_oid": absorbed.ins_oid}
        absorbed_changes.update(ins="", ins_oid="")
    patients.change(
        conn,
        absorbed.id,
        absorbed_changes,
        message_id,
        now,
        "merged_into",
        {"survivor": survivor.id},
    )
    if "ins" in moved:
        patients.change(
            conn,
            survivor.id,
            dict(moved["ins"]),
            message_id,
            now,
            "ins_attached",
            {"from_merge_of": absorbed.id},
        )
    merge_id = conn.execute(
        insert(merges)
        .values(
            survivor_id=survivor.id,
            absorbed_id=absorbed.id,
            message_id=message_id,
            at=now,
            moved=json.dumps(moved),
        )
        .returning(merges.c.id)
    ).scalar_one()
    patients.record(
        conn,
        survivor.id,
        message_id,
        now,
        "merged",
        {"absorbed": absorbed.id, "merge_id": merge_id},
    )
    log.info("patients_merged", message_id=message_id, merge_id=merge_id)
    return survivor.id


def unmerge(conn: Connection, merge_id: int, actor: str, reason: str, now: datetime) -> None:
    """Undo a merge: the rows it moved go back to the absorbed patient, which stands alone
    again. Rows the survivor received since stay with the survivor."""
    row = conn.execute(select(merges).where(merges.c.id == merge_id)).first()
    if row is None:
        raise LookupError(f"no merge {merge_id}")
    if row.undone_at is not None:
        raise ValueError(f"merge {merge_id} was already undone")
    moved = json.loads(row.moved)
    for name, table in _MOVED.items():
        ids = moved.get(name) or []
        if ids:
            conn.execute(
                update(table)
                .where(table.c.id.in_(ids), table.c.patient_id == row.survivor_id)
                .values(patient_id=row.absorbed_id)
            )
    restored: dict[str, Any] = {"merged_into": None}
    if "ins" in moved:
        patients.change(
            conn,
            row.survivor_id,
            {"ins": "", "ins_oid": ""},
            None,
            now,
            "ins_removed",
            {"merge_undone": merge_id},
            actor,
            reason,
        )
        restored.update(moved["ins"])
    patients.change(
        conn,
        row.absorbed_id,
        restored,
        None,
        now,
        "merge_undone",
        {"merge_id": merge_id},
        actor,
        reason,
    )
    patients.record(
        conn,
        row.survivor_id,
        None,
        now,
        "merge_undone",
        {"merge_id": merge_id, "absorbed": row.absorbed_id},
        actor,
        reason,
    )
    conn.execute(
        update(merges)
        .where(merges.c.id == merge_id)
        .values(undone_at=now, undone_by=actor, undo_reason=reason)
    )


def change_identity(
    conn: Connection, filing: Filing, message_id: int, op: StoreOperation, now: datetime
) -> int:
    """A47: the identifier list changed; MRG-1 holds the former identifier."""
    assert op.previous is not None
    target = _previous(conn, op.previous)
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
