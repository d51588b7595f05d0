"""Patient and encounter records read from PID and PV1 (pure: no database access)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.errors import UnknownPatient
from engine.hl7v2.reader import Message
from engine.hl7v2.separators import Separators
from engine.hl7v2.values import (
    has_value,
    parse_ts,
    part,
    render_address,
    render_location,
    render_phone,
)
from engine.identity.hl7 import hl7_identity
from engine.identity.model import Identity

#: Triggers whose event time is the start of the encounter (admission, registration).
_ADMITTING = frozenset({"A01", "A04"})


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """The patient a message names: its identity (INS, local ids, traits) and contact data."""

    identity: Identity
    address: str = ""
    phone: str = ""


@dataclass(frozen=True, slots=True)
class EncounterRecord:
    visit_number: str
    visit_authority: str = ""
    patient_class: str = ""
    location: str = ""
    attending: str = ""
    admitted_ts: str = ""
    admitted_at: datetime | None = None
    discharged_ts: str = ""
    discharged_at: datetime | None = None
    #: ``None`` keeps the stored status (a new encounter is ``open``, or ``closed`` when a
    #: discharge time is known); ``closed`` (A03), ``open`` (A13, clears the discharge) and
    #: ``cancelled`` (A11) set it.
    status: str | None = None


def extract_patient(msg: Message) -> PatientRecord:
    """The patient named by PID; raises UnknownPatient when it carries no usable PID-3."""
    pid = msg.segment("PID")
    if pid is None:
        raise UnknownPatient("the message has no PID segment")
    identity = hl7_identity(msg, pid)
    if not identity.ins and not identity.local_ids:
        raise UnknownPatient("PID-3 carries no usable patient identifier (no value)")
    seps = msg.separators
    phones = pid.repetitions(13)
    return PatientRecord(
        identity=identity,
        address=_address(pid.repetitions(11), seps),
        phone=render_phone(phones[0], seps) if phones else "",
    )


def _address(addresses: list[str], seps: Separators) -> str:
    postal = [a for a in addresses if part(a, seps, 7) != "BDL"]
    home = [a for a in postal if part(a, seps, 7) == "H"]
    for raw in home + postal:
        text = render_address(raw, seps)
        if text:
            return text
    return ""


def extract_encounter(msg: Message, closing: bool) -> EncounterRecord | None:
    """The visit in PV1 (number from PV1-19, else PID-18); None without PV1 or visit number.

    ``closing`` (A03) takes the discharge time from PV1-45, else the event time.
    """
    pv1 = msg.segment("PV1")
    if pv1 is None:
        return None
    source, field = pv1, 19
    if not has_value(pv1.get(19, 1)):
        pid = msg.segment("PID")
        if pid is None or not has_value(pid.get(18, 1)):
            return None
        source, field = pid, 18
    admitted_ts = pv1.get(44, 1)
    if not admitted_ts and msg.trigger in _ADMITTING:
        admitted_ts = _event_ts(msg)
    discharged_ts = pv1.get(45, 1)
    if not discharged_ts and closing:
        discharged_ts = _event_ts(msg)
    return EncounterRecord(
        visit_number=source.get(field, 1),
        visit_authority=source.get(field, 4, 1) or source.get(field, 4, 2),
        patient_class=pv1.get(2, 1),
        location=render_location(pv1, 3),
        attending=pv1.get(7, 1),
        admitted_ts=admitted_ts,
        admitted_at=parse_ts(admitted_ts) if admitted_ts else None,
        discharged_ts=discharged_ts,
        discharged_at=parse_ts(discharged_ts) if discharged_ts else None,
        status="closed" if closing else None,
    )


def _event_ts(msg: Message) -> str:
    """When the event happened: EVN-6 (occurred), else EVN-2 (recorded), else MSH-7."""
    evn = msg.segment("EVN")
    if evn is not None:
        ts = evn.get(6, 1) or evn.get(2, 1)
        if ts:
            return ts
    return msg.msh.get(7, 1)
