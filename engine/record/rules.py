"""Who may open a record, see a document, and change what (DOMAIN.md §6, CSP R1111-46,
L1111-17, R1111-51, R1111-53).

Each function is pure: the caller loads the facts (``engine.store.record_access``) and logs
the access (``engine.store.access_log``).
"""

from __future__ import annotations

import calendar
from datetime import datetime
from functools import lru_cache

from engine.record.model import Actor, Decision, DocumentFacts, RecordFacts, Role, State

#: Reason codes of refusals (the API's 403 ``reason``; ``not_found`` is a 404).
NOT_FOUND = "not_found"
NOT_AUTHORISED = "not_authorised"
BLOCKED = "blocked_by_patient"
EMERGENCY_OPPOSED = "emergency_opposed"
RECORD_CLOSED = "record_closed"


@lru_cache(maxsize=4096)
def rpps_of(value: str) -> str:
    """The RPPS in an identifier as stored (``root^extension``) or given: the national
    professional id ``8`` + RPPS (as CDA authors and CPS certificates carry it) gives the RPPS."""
    ident = value.rpartition("^")[2].strip()
    return ident[1:] if len(ident) == 12 and ident.startswith("8") else ident


def decide(actor: Actor, facts: RecordFacts, now: datetime) -> Decision:
    """Whether ``actor`` may open the record at all."""
    if actor.role is Role.OPERATOR:
        return Decision(True, basis="operator")
    if actor.patient_side:
        # The caller answers 404 for another patient's INS; the patient reads a closed record.
        if actor.ident != facts.ins:
            return Decision(False, NOT_FOUND)
        return Decision(True, basis="own_record")
    return _professional(rpps_of(actor.ident), actor.facility, facts, now)


def _professional(rpps: str, facility: str, facts: RecordFacts, now: datetime) -> Decision:
    if facts.state is State.NONE:
        return Decision(False, NOT_FOUND)
    if facts.state is State.CLOSED:
        return Decision(False, RECORD_CLOSED)
    if rpps in facts.blocked:
        return Decision(False, BLOCKED)
    if rpps == facts.medecin_traitant:
        return Decision(True, basis="medecin_traitant")
    if rpps in facts.authorised:
        return Decision(True, basis="authorised")
    if facility and facility in facts.care_facilities:
        return Decision(True, basis="care_team")  # presumed authorised (R1111-46)
    ends = facts.emergency.get(rpps)
    if ends is not None and ends > now:
        return Decision(True, emergency=True, basis="emergency")
    return Decision(False, NOT_AUTHORISED)


def emergency_allowed(actor: Actor, facts: RecordFacts) -> Decision:
    """Whether a professional may break the glass (L1111-17)."""
    if actor.role is not Role.PROFESSIONAL:
        return Decision(False, NOT_AUTHORISED)
    if facts.state is State.NONE:
        return Decision(False, NOT_FOUND)
    if facts.state is State.CLOSED:
        return Decision(False, RECORD_CLOSED)
    if rpps_of(actor.ident) in facts.blocked:
        return Decision(False, BLOCKED)
    if facts.emergency_opposed:
        return Decision(False, EMERGENCY_OPPOSED)
    return Decision(True, emergency=True, basis="emergency")


def is_author(actor: Actor, doc: DocumentFacts) -> bool:
    return (
        actor.role is Role.PROFESSIONAL
        and bool(doc.author_id)
        and rpps_of(doc.author_id) == rpps_of(actor.ident)
    )


def visible(actor: Actor, facts: RecordFacts, doc: DocumentFacts, now: datetime) -> bool:
    """Whether ``actor`` (already allowed in the record) sees ``doc``. Everyone else sees
    neither the document nor that something is masked (DOMAIN.md §6, Masking)."""
    if actor.role is Role.OPERATOR or is_author(actor, doc):
        return True
    if actor.role is Role.PROFESSIONAL:
        if doc.masked_ps:  # MASQUE_PS: the author only
            return False
        # A document the patient masked stays visible to the médecin traitant.
        return not doc.patient_masked or rpps_of(actor.ident) == facts.medecin_traitant
    if (
        doc.invisible_patient
        and doc.revealed_at is None
        and (doc.stored_at is None or now < one_month_after(doc.stored_at))
    ):
        return False  # until the announcement consultation, at most one month (R1111-53)
    return not (actor.role is Role.REPRESENTATIVE and doc.invisible_legal_reps)


def may_reveal(actor: Actor, doc: DocumentFacts) -> bool:
    """Only the author lifts INVISIBLE_PATIENT."""
    return is_author(actor, doc)


def may_manage(actor: Actor, facts: RecordFacts) -> bool:
    """Consent, closure, authorisations, blocks, oppositions, médecin traitant: the patient's
    (or their legal representative's)."""
    return actor.patient_side and actor.ident == facts.ins


def vsm_flag(author_id: str, facts: RecordFacts) -> str:
    """A VSM is the médecin traitant's to write: one from anyone else is kept, and flagged."""
    if facts.medecin_traitant and rpps_of(author_id) == facts.medecin_traitant:
        return ""
    return "vsm_not_by_medecin_traitant"


def one_month_after(moment: datetime) -> datetime:
    """The same day next month (the month's last day when it has fewer days)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
