"""The identity an HL7 v2 message gives its patient (PID, ZFD) and the one MRG-1 names.

PAM-FR rules (DOMAIN.md §2): an INS is a PID-3 repetition whose CX-4.2 is an INS OID (CX-5
``INS``); ``NH`` and the billing OIDs are social-security numbers, not patient identifiers; the
birth name is the PID-5 repetition typed ``L``, the name in use the one typed ``D``; XPN-2 is the
first given name and XPN-3 the list of given names; PID-11 typed ``BDL`` carries the INSEE
birth-place code in XAD-9; PID-32 holds the reliability codes; ZFD-4 ``Y`` says the birth date
was corrected.
"""

from __future__ import annotations

from engine.hl7v2.reader import Message, Segment
from engine.hl7v2.separators import Separators
from engine.hl7v2.values import has_value, part
from engine.identity.ins import BILLING_OIDS, classify_oid
from engine.identity.model import Identity, Ins, LocalId, Traits

_BILLING_TYPE = "NH"


def hl7_identity(msg: Message, pid: Segment) -> Identity:
    """The identity in ``pid`` (and the message's ZFD)."""
    seps = msg.separators
    ins, local, ignored = identifiers(pid.repetitions(3), seps)
    zfd = msg.segment("ZFD")
    typed = any(part(n, seps, 7) == "L" for n in pid.repetitions(5))
    return Identity(
        birth_name_typed=typed,
        ins=ins,
        local_ids=local,
        traits=_traits(pid, seps),
        reliability=tuple(r for r in pid.repetitions(32) if r),
        birth_date_corrected=zfd is not None and zfd.get(4) == "Y",
        ignored_ins=ignored,
    )


def merged_identity(msg: Message) -> Identity | None:
    """The identifiers MRG-1 names (the absorbed or former identity of A40/A47), or None."""
    mrg = msg.segment("MRG")
    if mrg is None:
        return None
    ins, local, ignored = identifiers(mrg.repetitions(1), msg.separators)
    if not ins and not local:
        return None
    return Identity(ins=ins, local_ids=local, ignored_ins=ignored)


def identifiers(
    repetitions: list[str], seps: Separators
) -> tuple[tuple[Ins, ...], tuple[LocalId, ...], int]:
    """INS, local identifiers and the count of ignored INS-like ids in a CX list."""
    ins: list[Ins] = []
    local: dict[tuple[str, str, str, str], LocalId] = {}
    ignored = 0
    for raw in repetitions:
        value = part(raw, seps, 1)
        if not has_value(value):
            continue
        oid = part(raw, seps, 4, 2)
        type_code = part(raw, seps, 5)
        kind = classify_oid(oid)
        if type_code == _BILLING_TYPE or oid in BILLING_OIDS:
            ignored += kind is not None or oid in BILLING_OIDS
            continue
        if kind is not None:
            ins.append(Ins(value, oid, kind))
            continue
        if type_code == "INS":  # an INS type with an OID that names no INS
            ignored += 1
            continue
        ident = LocalId(value, part(raw, seps, 4, 1), oid, type_code)
        local.setdefault((value, ident.authority, oid, type_code), ident)
    return tuple(ins), tuple(local.values()), ignored


def _traits(pid: Segment, seps: Separators) -> Traits:
    names = pid.repetitions(5)
    birth = _name_of_type(names, seps, "L")
    used = _name_of_type(names, seps, "D")
    if birth is None and used is None and names:
        birth = names[0]  # untyped: the only name there is
    first, given = _given_names(birth or used or "", seps)
    return Traits(
        birth_name=part(birth, seps, 1, 1).strip() if birth else "",
        first_given_name=first,
        given_names=given,
        birth_date=pid.get(7, 1)[:8],
        sex=pid.get(8),
        birth_place=_birth_place_code(pid.repetitions(11), seps) or pid.get(23),
        used_name=part(used, seps, 1, 1).strip() if used else "",
    )


def _name_of_type(names: list[str], seps: Separators, name_type: str) -> str | None:
    return next((n for n in names if part(n, seps, 7) == name_type), None)


def _given_names(raw: str, seps: Separators) -> tuple[str, str]:
    """(first given name, all given names). In France XPN-3 lists every given name, the first
    included; elsewhere it holds the middle names, so XPN-2 is put in front."""
    first, others = part(raw, seps, 2).strip(), part(raw, seps, 3).strip()
    if first and (others == first or others.startswith(first + " ")):
        return first, others
    return first, " ".join(p for p in (first, others) if p)


def _birth_place_code(addresses: list[str], seps: Separators) -> str:
    """The INSEE birth-place code: XAD-9 of the PID-11 repetition typed BDL."""
    for raw in addresses:
        if part(raw, seps, 7) == "BDL":
            return part(raw, seps, 9)
    return ""
