"""Filing a message under its patient: the identity rules of PAM-FR and the DMP, in one place.

ADT messages (the identity source) create patients, qualify them with an INS, update their
traits and release the results held for them. Results and documents never create or change an
identity: for a patient not known yet they are held (902), on a mismatch they go to review.
An operator's decision (``aiguillage identity resolve``) overrides the rules for its message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection

from engine.errors import IdentityError, InsMissing, PatientNotKnown
from engine.identity import patients, review
from engine.identity.model import Identity, Traits
from engine.identity.patients import StoredPatient, identity_keys
from engine.identity.resolve import identify
from engine.identity.rules import QUALIFIED, IdentityPolicy, InsDecision, decide_ins
from engine.journal import holds
from engine.transforms.hl7_values import parse_date
from engine.transforms.map_adt import PatientRecord

log = structlog.get_logger("engine.identity")

#: Traits that only the INS qualification sets on a qualified identity.
_INS_TRAITS = ("birth_name", "first_given_name", "given_names", "birth_date", "sex", "birth_place")


@dataclass(frozen=True, slots=True)
class Filing:
    policy: IdentityPolicy

    def patient_for(
        self, conn: Connection, message_id: int, record: PatientRecord, now: datetime, adt: bool
    ) -> int:
        """The id of the patient the message is filed under; raises IdentityError."""
        identity = record.identity
        try:
            decision = decide_ins(identity, self.policy)
            if identity.ins and not decision.usable:
                log.info("ins_not_used", message_id=message_id, reason=decision.why_not)
            if self.policy.require_ins and not decision.usable:
                raise InsMissing(f"this channel requires an INS ({decision.why_not})")
            found = identify(conn, identity, decision, adt=adt)
        except IdentityError:
            attached = review.attached_patient(conn, message_id)
            if attached is None:
                raise
            log.info("identity_attached_by_operator", message_id=message_id, patient_id=attached)
            return attached
        if not adt:
            if found is None:
                raise PatientNotKnown(
                    "no patient in the store has this INS or local identifier yet: held until "
                    "an ADT makes it known",
                    keys=hold_keys(identity, decision),
                )
            return found.id
        return self.file_adt(conn, message_id, record, decision, found, now)

    def file_adt(
        self,
        conn: Connection,
        message_id: int,
        record: PatientRecord,
        decision: InsDecision,
        found: StoredPatient | None,
        now: datetime,
    ) -> int:
        """Create or update the patient of an ADT and release what was held for it."""
        identity = record.identity
        if found is None:
            patient_id = patients.create(conn, _new_patient(record, decision), message_id, now)
            patients.add_local_ids(conn, patient_id, list(identity.local_ids), message_id, now)
        else:
            patient_id = found.id
            _update(conn, found, record, decision, message_id, now)
        released = holds.release(conn, hold_keys(identity, decision), now)
        if released:
            log.info("held_messages_released", message_id=message_id, released=released)
        return patient_id


def hold_keys(identity: Identity, decision: InsDecision) -> tuple[str, ...]:
    return identity_keys([i.value for i in decision.usable], identity.local_ids)


def _status(identity: Identity) -> str:
    return "~".join(identity.reliability)


def _new_patient(record: PatientRecord, decision: InsDecision) -> dict[str, Any]:
    traits = record.identity.traits
    values: dict[str, Any] = {t: getattr(traits, t) for t in Traits.__slots__}
    values.update(
        birth_date_parsed=parse_date(traits.birth_date),
        address=record.address,
        phone=record.phone,
        identity_status=_status(record.identity),
    )
    ins = decision.preferred
    if ins is not None:
        values.update(ins=ins.value, ins_oid=ins.oid)
    return values


def _update(
    conn: Connection,
    found: StoredPatient,
    record: PatientRecord,
    decision: InsDecision,
    message_id: int,
    now: datetime,
) -> None:
    identity, traits = record.identity, record.identity.traits
    ins = decision.preferred
    if ins is not None and found.ins != ins.value:
        # Qualification of a provisional identity, or an NIA replaced by the NIR (A31): the
        # INS traits come with it.
        event = "ins_replaced" if found.ins else "ins_attached"
        changes: dict[str, Any] = {t: getattr(traits, t) for t in _INS_TRAITS}
        changes.update(ins=ins.value, ins_oid=ins.oid, identity_status=_status(identity))
        # The history keeps what was replaced (the database, never the logs, holds it).
        before = {"ins": found.ins, "ins_oid": found.ins_oid}
        before.update({t: getattr(found.traits, t) for t in _INS_TRAITS})
        detail = {"before": before, "after": changes}
        patients.change(conn, found.id, changes, message_id, now, event, detail)
        found = dataclasses.replace(
            found, ins=ins.value, ins_oid=ins.oid, identity_status=changes["identity_status"]
        )
        found = dataclasses.replace(found, traits=traits)
    changes = _identity_changes(found, record)
    if changes:
        before = {k: getattr(found.traits, k, found.identity_status) for k in changes}
        patients.change(
            conn,
            found.id,
            changes,
            message_id,
            now,
            "traits_updated",
            {"before": before, "after": changes},
        )
    contact = {
        k: v
        for k, v in (("address", record.address), ("phone", record.phone))
        if v and v != getattr(found, k)
    }
    if contact:
        patients.update_contact(conn, found.id, contact, message_id, now)
    new = [
        i
        for i in identity.local_ids
        if (i.value, i.authority, i.authority_oid) not in patients.owned_local_keys(conn, found.id)
    ]
    patients.add_local_ids(conn, found.id, new, message_id, now)


def _identity_changes(found: StoredPatient, record: PatientRecord) -> dict[str, Any]:
    """Non-empty incoming values that differ. A qualified identity's INS traits and status are
    left alone: only an INS-bearing qualification (or an A47) changes them."""
    traits = record.identity.traits
    qualified = bool(found.ins)
    changes: dict[str, Any] = {}
    for name in Traits.__slots__:
        value = getattr(traits, name)
        if (
            value
            and value != getattr(found.traits, name)
            and not (qualified and name in _INS_TRAITS)
        ):
            changes[name] = value
    status = _status(record.identity)
    if status and status != found.identity_status and not (qualified and QUALIFIED not in status):
        changes["identity_status"] = status
    return changes
