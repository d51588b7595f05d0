"""Filing a message under its patient: the identity rules of PAM-FR and the DMP, in one place.

ADT messages (the identity source) create patients, qualify them with an INS, update their
traits and release the results held for them. Results and documents never create or change an
identity: for a patient not known yet they are held (902), on a mismatch they go to review.
An operator's decision (``aiguillage identity resolve``) overrides the rules for its message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection

from engine.errors import IdentityError, InsMissing, PatientNotKnown, UnknownPatient
from engine.hl7v2.values import parse_date
from engine.identity.model import TRAIT_NAMES, Identity, Ins, trait_key
from engine.identity.rules import QUALIFIED, IdentityPolicy, InsDecision, decide_ins
from engine.journal import holds
from engine.pipeline.identify import review
from engine.pipeline.identify.resolve import identify
from engine.store import patients, trait_keys
from engine.store.patients import StoredPatient, identity_keys
from engine.transforms.map_adt import PatientRecord

log = structlog.get_logger("engine.identity")

#: Traits that only the INS qualification sets on a qualified identity.
INS_TRAITS = ("birth_name", "first_given_name", "given_names", "birth_date", "sex", "birth_place")


@dataclass(frozen=True, slots=True)
class Filing:
    policy: IdentityPolicy

    def patient_for(
        self,
        conn: Connection,
        message_id: int,
        record: PatientRecord,
        now: datetime,
        adt: bool,
        confirm: Callable[[int], None] | None = None,
    ) -> int:
        """The id of the patient the message is filed under; raises IdentityError.

        ``confirm`` checks what else the message says about the patient found (a document's
        recordTarget): its IdentityError, like the rules' own, gives way to an operator's
        attachment of the message."""
        identity = record.identity
        decision = InsDecision(())
        try:
            decision = decide_ins(identity, self.policy)
            if identity.ins and not decision.usable:
                log.info("ins_not_used", message_id=message_id, reason=decision.why_not)
            if self.policy.require_ins and not decision.usable:
                raise InsMissing(f"this channel requires an INS ({decision.why_not})")
            if not decision.usable and not identity.local_ids:
                raise UnknownPatient(
                    f"no usable patient identifier: {decision.why_not}, and no local identifier"
                )
            found = identify(conn, identity, decision, adt=adt)
            if found is not None and confirm is not None:
                confirm(found.id)
            if found is None and not adt:
                raise PatientNotKnown(
                    "no patient in the store has this INS or local identifier yet: held until "
                    "an ADT makes it known",
                    keys=hold_keys(identity, decision),
                )
        except IdentityError:
            found = self._attached(conn, message_id)
            if found is None:
                raise
            if not decision.usable:  # the rules refused the INS: the operator did not add it
                decision = InsDecision(())
        if not adt:
            assert found is not None
            return found.id
        return self.file_adt(conn, message_id, record, decision, found, now)

    @staticmethod
    def _attached(conn: Connection, message_id: int) -> StoredPatient | None:
        """The patient an operator attached this message to (after its merges), if any."""
        attached = review.attached_patient(conn, message_id)
        patient = None if attached is None else patients.by_id(conn, attached)
        if patient is not None:
            log.info("identity_attached_by_operator", message_id=message_id, patient_id=patient.id)
        return patient

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
            _notice_homonyms(conn, message_id, patient_id, identity, now)
        else:
            patient_id = found.id
            _update(conn, found, record, decision, message_id, now)
        released = holds.release(conn, hold_keys(identity, decision), now)
        if released:
            log.info("held_messages_released", message_id=message_id, released=released)
        return patient_id


def _notice_homonyms(
    conn: Connection, message_id: int, patient_id: int, identity: Identity, now: datetime
) -> None:
    """A new patient whose folded strict traits are another's: a notice for the identity cell
    (twins, namesakes or a duplicate), never a block nor a match."""
    t = identity.traits
    key = trait_key(t.birth_name, t.first_given_name, t.birth_date, t.sex)
    others = [] if key is None else trait_keys.homonyms(conn, patient_id, key)
    if others:
        log.info("identity_homonym", message_id=message_id, patient_id=patient_id, homonyms=others)
        review.open_notice(conn, message_id, patient_id, others, now)


def hold_keys(identity: Identity, decision: InsDecision) -> tuple[str, ...]:
    return identity_keys([i.value for i in decision.usable], identity.local_ids)


def status_of(identity: Identity) -> str:
    """The identity status as stored: PID-32's codes joined (e.g. ``VALI``)."""
    return "~".join(identity.reliability)


def _new_patient(record: PatientRecord, decision: InsDecision) -> dict[str, Any]:
    traits = record.identity.traits
    values: dict[str, Any] = {t: getattr(traits, t) for t in TRAIT_NAMES}
    values.update(
        birth_date_parsed=parse_date(traits.birth_date),
        address=record.address,
        phone=record.phone,
        identity_status=status_of(record.identity),
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
    ins = decision.preferred
    if ins is not None and found.ins != ins.value:
        found = qualify(conn, found, record, ins, message_id, now)
    changes = _identity_changes(found, record)
    if changes:
        before = {k: getattr(found.traits, k, found.identity_status) for k in changes}
        detail = {"before": before, "after": changes}
        patients.change(conn, found.id, changes, message_id, now, "traits_updated", detail)
    contact = {
        k: v
        for k, v in (("address", record.address), ("phone", record.phone))
        if v and v != getattr(found, k)
    }
    if contact:
        patients.update_contact(conn, found.id, contact, message_id, now)
    new = patients.new_local_ids(conn, found.id, record.identity.local_ids)
    patients.add_local_ids(conn, found.id, new, message_id, now)


def qualify(
    conn: Connection,
    found: StoredPatient,
    record: PatientRecord,
    ins: Ins,
    message_id: int,
    now: datetime,
) -> StoredPatient:
    """Qualification of a provisional identity, or an NIA replaced by the NIR (A31): the INS
    comes with its traits (those the message gives)."""
    traits = record.identity.traits
    changes: dict[str, Any] = {t: getattr(traits, t) for t in INS_TRAITS if getattr(traits, t)}
    changes.update(ins=ins.value, ins_oid=ins.oid, identity_status=status_of(record.identity))
    # The history keeps what was replaced (the database, never the logs, holds it).
    before = {"ins": found.ins, "ins_oid": found.ins_oid}
    before.update({t: getattr(found.traits, t) for t in INS_TRAITS})
    event = "ins_replaced" if found.ins else "ins_attached"
    detail = {"before": before, "after": changes}
    patients.change(conn, found.id, changes, message_id, now, event, detail)
    qualified = {t: changes.get(t, getattr(found.traits, t)) for t in INS_TRAITS}
    return dataclasses.replace(
        found,
        ins=ins.value,
        ins_oid=ins.oid,
        identity_status=changes["identity_status"],
        traits=dataclasses.replace(found.traits, **qualified),
    )


def _identity_changes(found: StoredPatient, record: PatientRecord) -> dict[str, Any]:
    """Non-empty incoming values that differ. A qualified identity's INS traits and status are
    left alone: only an INS-bearing qualification (or an A47) changes them."""
    traits = record.identity.traits
    qualified = bool(found.ins)
    changes: dict[str, Any] = {}
    for name in TRAIT_NAMES:
        value = getattr(traits, name)
        if (
            value
            and value != getattr(found.traits, name)
            and not (qualified and name in INS_TRAITS)
        ):
            changes[name] = value
    status = status_of(record.identity)
    if status and status != found.identity_status:
        if qualified and QUALIFIED not in status:
            # Only an A47 demotes a qualified identity (DOMAIN.md §2): kept, and said.
            log.warning("identity_status_kept", patient_id=found.id, received=status)
        else:
            changes["identity_status"] = status
    return changes
