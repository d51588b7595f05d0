"""A40 merges (their undo is :mod:`engine.pipeline.identify.unmerge`).

The absorbed patient's identifiers, encounters and observations move to the survivor; the
absorbed row stays, ``merged_into`` the survivor, so its identifiers still resolve. The rows
moved are recorded so that an operator can undo the merge (the writes:
:mod:`engine.store.merges`). Two patients with different INS are never merged, nor an INS whose
traits disagree with the survivor's: those are identity conflicts (904) for a human, as is a
visit both patients hold.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection

from engine.errors import IdentityConflict
from engine.identity.model import Identity
from engine.pipeline.identify.patient_filing import INS_TRAITS, Filing
from engine.store import merges, patients
from engine.store.patients import StoredPatient
from engine.transforms.map_hl7 import StoreOperation

log = structlog.get_logger("engine.identity")


def previous_patient(conn: Connection, previous: Identity) -> StoredPatient | None:
    """The patient MRG-1 names, or None; raises IdentityConflict when it names several."""
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
    absorbed = previous_patient(conn, op.previous)
    record = op.patient
    if absorbed is not None and absorbed.ins in {i.value for i in record.identity.ins}:
        # The survivor's PID carries the absorbed record's INS (the usual duplicate): the INS
        # moves with the merge below, with its traits checked.
        record = dataclasses.replace(record, identity=dataclasses.replace(record.identity, ins=()))
    survivor_id = filing.patient_for(conn, message_id, record, now, adt=True)
    if absorbed is None or absorbed.id == survivor_id:
        log.info("merge_nothing_to_absorb", message_id=message_id, patient_id=survivor_id)
        return survivor_id
    survivor = patients.by_id(conn, survivor_id)
    assert survivor is not None
    ins_move = _ins_move(absorbed, survivor)
    _check_visits(conn, absorbed, survivor)
    moved = merges.move_rows(conn, absorbed.id, survivor.id)
    absorbed_changes: dict[str, Any] = {"merged_into": survivor.id}
    if ins_move:
        moved["ins"] = ins_move
        absorbed_changes.update(ins="", ins_oid="")
    detail = {"survivor": survivor.id}
    patients.change(conn, absorbed.id, absorbed_changes, message_id, now, "merged_into", detail)
    if ins_move:
        detail = {"from_merge_of": absorbed.id, **ins_move}
        patients.change(
            conn, survivor.id, ins_move["after"], message_id, now, "ins_attached", detail
        )
    merge_id = merges.record(conn, survivor.id, absorbed.id, message_id, now, moved)
    detail = {"absorbed": absorbed.id, "merge_id": merge_id}
    patients.record(conn, survivor.id, message_id, now, "merged", detail)
    log.info("patients_merged", message_id=message_id, merge_id=merge_id)
    return survivor.id


def _ins_move(absorbed: StoredPatient, survivor: StoredPatient) -> dict[str, Any] | None:
    """What the survivor takes from a qualified absorbed record (its INS, status and traits),
    with the values it replaces; None when the absorbed record has no INS."""
    pair = [survivor.id, absorbed.id]
    if not absorbed.ins:
        return None
    if survivor.ins:
        if survivor.ins != absorbed.ins:
            raise IdentityConflict("A40 would merge two patients with different INS", pair)
        return None
    diffs = absorbed.traits.differences(survivor.traits)
    if diffs:
        raise IdentityConflict(
            f"A40: the absorbed record's INS traits differ from the survivor's: {', '.join(diffs)}",
            pair,
        )
    fields = ("ins", "ins_oid", "identity_status", *INS_TRAITS)
    after = {f: getattr(absorbed, f, None) or getattr(absorbed.traits, f, "") for f in fields}
    before = {f: getattr(survivor, f, None) or getattr(survivor.traits, f, "") for f in fields}
    return {"before": before, "after": {k: v for k, v in after.items() if v}}


def _check_visits(conn: Connection, absorbed: StoredPatient, survivor: StoredPatient) -> None:
    if merges.visits(conn, absorbed.id) & merges.visits(conn, survivor.id):
        raise IdentityConflict(
            "A40: both patients hold the same visit number", [survivor.id, absorbed.id]
        )
