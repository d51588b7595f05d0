"""Observation records read from the OBR/OBX groups of a result message (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from engine.hl7v2.escape import unescape
from engine.hl7v2.reader import Message, Segment
from engine.hl7v2.separators import Separators
from engine.hl7v2.values import parse_ts, part

#: OBX-2 value types whose OBX-5 is one plain value: stored unescaped. Composite types (CWE,
#: CE, SN, ED, RP...) keep their HL7 text, components and escapes included, so that nothing of
#: their structure is lost.
PLAIN_VALUE_TYPES = frozenset(
    {"ST", "TX", "FT", "NM", "DT", "TM", "DTM", "TS", "ID", "IS", "SI", "GTS", "NR"}
)


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """The OBR an observation belongs to."""

    placer_number: str = ""  # OBR-2.1
    filler_number: str = ""  # OBR-3.1
    code: str = ""  # OBR-4.1
    code_system: str = ""  # OBR-4.3
    text: str = ""  # OBR-4.2
    observed_ts: str = ""  # OBR-7


NO_ORDER = OrderRecord()


class ObservationRecord(NamedTuple):
    """One OBX. A named tuple, not a dataclass: built ten times per result message, and a
    frozen dataclass costs several times more to build."""

    order: OrderRecord
    set_id: str  # OBX-1
    value_type: str  # OBX-2
    code: str  # OBX-3.1
    code_system: str  # OBX-3.3
    code_text: str  # OBX-3.2
    sub_id: str  # OBX-4
    value: str  # OBX-5, see PLAIN_VALUE_TYPES
    unit: str  # OBX-6.1, else OBX-6.2
    reference_range: str  # OBX-7
    abnormal_flags: str  # OBX-8 codes, repetitions joined with "~"
    status: str  # OBX-11
    observed_ts: str  # OBX-14, else OBR-7, as received
    observed_at: datetime | None


def extract_observations(msg: Message) -> list[ObservationRecord]:
    """Every OBX, each with the last OBR before it.

    An OBX before any OBR, or after an ORC that starts a new order but before its OBR, has no
    order (:data:`NO_ORDER`).
    """
    seps = msg.separators
    order = NO_ORDER
    out: list[ObservationRecord] = []
    for seg in msg.segments:
        name = seg.name
        if name == "OBX":
            out.append(_observation(seg.text, order, seps))
        elif name == "OBR":
            order = _order(seg)
        elif name == "ORC":
            order = NO_ORDER
    return out


def _order(obr: Segment) -> OrderRecord:
    return OrderRecord(
        placer_number=obr.get(2, 1),
        filler_number=obr.get(3, 1),
        code=obr.get(4, 1),
        code_system=obr.get(4, 3),
        text=obr.get(4, 2),
        observed_ts=obr.get(7, 1),
    )


def _observation(text: str, order: OrderRecord, seps: Separators) -> ObservationRecord:
    # The hot path of result ingest: the OBX is split once here rather than once per field
    # through Segment.get, and only text holding the escape character is unescaped.
    fields = text.split(seps.field)
    fields += [""] * (15 - len(fields))
    if seps.escape in text:
        return _observation_escaped(fields, order, seps)
    comp, rep = seps.component, seps.repetition
    code = [*fields[3].split(rep, 1)[0].split(comp, 3), "", ""][:3]
    unit = fields[6].split(rep, 1)[0].split(comp, 2)
    flags = fields[8]
    if comp in flags:
        flags = rep.join(r.split(comp, 1)[0] for r in flags.split(rep))
    observed_ts = fields[14].split(comp, 1)[0] or order.observed_ts
    return ObservationRecord(
        order=order,
        set_id=fields[1],
        value_type=fields[2],
        code=code[0],
        code_system=code[2],
        code_text=code[1],
        sub_id=fields[4],
        value=fields[5],
        unit=unit[0] or (unit[1] if len(unit) > 1 else ""),
        reference_range=fields[7],
        abnormal_flags=flags,
        status=fields[11],
        observed_ts=observed_ts,
        observed_at=parse_ts(observed_ts) if observed_ts else None,
    )


def _observation_escaped(
    fields: list[str], order: OrderRecord, seps: Separators
) -> ObservationRecord:
    """The general case: every part read with unescaping."""
    rep = seps.repetition
    value_type = part(fields[2], seps, 1)
    value = fields[5]
    if value_type in PLAIN_VALUE_TYPES:
        value = rep.join(unescape(r, seps) for r in value.split(rep))
    flags = rep.join(part(r, seps, 1) for r in fields[8].split(rep)) if fields[8] else ""
    observed_ts = part(fields[14], seps, 1) or order.observed_ts
    return ObservationRecord(
        order=order,
        set_id=unescape(fields[1], seps),
        value_type=value_type,
        code=part(fields[3], seps, 1),
        code_system=part(fields[3], seps, 3),
        code_text=part(fields[3], seps, 2),
        sub_id=unescape(fields[4], seps),
        value=value,
        unit=part(fields[6], seps, 1) or part(fields[6], seps, 2),
        reference_range=unescape(fields[7], seps),
        abnormal_flags=flags,
        status=unescape(fields[11], seps),
        observed_ts=observed_ts,
        observed_at=parse_ts(observed_ts) if observed_ts else None,
    )
