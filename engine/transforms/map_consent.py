"""What an ADT says of the patient's record (DOMAIN.md §2 ZFA, §6 consent), mapped by the
transform stage for the record store, which applies it (:func:`engine.store.consent.apply_consent`).

A death closes the record: PID-30 = Y, or an A03 with a death date in PID-29. Otherwise the
facility's ZFA segment (IHE PAM France 2.11; field meanings of ZFA-9/11 unverified, read from
the ANS samples): ZFA-1 the DMP status (``FERME`` closes), ZFA-6 the opposition to emergency
access (Y/N), ZFA-9 ``INO`` (informed, not opposed) or ZFA-11 ``IC`` (informed, consents)
record the consent; ``IO``/``INC`` leave a record that was never opened unopened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.hl7v2.reader import Message
from engine.hl7v2.values import parse_ts

#: ZFA-6 values: the patient opposes emergency access (Y) or does not (N).
_OPPOSED = {"Y": True, "N": False}


@dataclass(frozen=True, slots=True)
class RecordConsent:
    """What one ADT says of its patient's record. Whether it changes anything depends on the
    record's state, which only the store knows (a closure closes an open record only)."""

    #: The patient died (the record closes for good).
    died: bool = False
    #: PID-29, when given (else the death is dated when it is applied).
    died_at: datetime | None = None
    #: ZFA-1 ``FERME``: the facility closes the record.
    closes: bool = False
    #: ZFA-9 ``INO`` or ZFA-11 ``IC``: the patient consents (a record never opened opens).
    consents: bool = False
    #: ZFA-6: the patient opposes emergency access (True) or not (False); None: not said.
    emergency_opposed: bool | None = None


def record_consent(msg: Message) -> RecordConsent | None:
    """What ``msg`` (an ADT) says of the record; None when it says nothing (no death, no ZFA)."""
    pid = msg.segment("PID")
    if pid is not None:
        died = parse_ts(pid.get(29, 1))
        if pid.get(30) == "Y" or (msg.trigger == "A03" and died is not None):
            return RecordConsent(died=True, died_at=died)
    zfa = msg.segment("ZFA")
    if zfa is None:
        return None
    return RecordConsent(
        closes=zfa.get(1).upper() == "FERME",
        consents=zfa.get(9) == "INO" or zfa.get(11) == "IC",
        emergency_opposed=_OPPOSED.get(zfa.get(6)),
    )
