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
            order = _order(seg, seps)
        elif name == "ORC":
            order = NO_ORDER
    return out


def _order(obr: Segment, seps: Separators) -> OrderRecord:
    # As Segment.get(n, c): the first repetition's component, unescaped (each field split once).
    rep = seps.repetition
    code = obr.field(4).split(rep, 1)[0]
    return OrderRecord(
        placer_number=part(obr.field(2).split(rep, 1)[0], seps, 1),
        filler_number=part(obr.field(3).split(rep, 1)[0], seps, 1),
        code=part(code, seps, 1),
        code_system=part(code, seps, 3),
        text=part(code, seps, 2),
        observed_ts=part(obr.field(7).split(rep, 1)[0], seps, 1),
    )


def _observation(text: str, order: OrderRecord, seps: Separators) -> ObservationRecord:
    # The hot path of result ingest (ten a message): the OBX is split once here rather than
    # once per field through Segment.get, only text holding the escape character is unescaped,
    # a part is split only when it holds its separator, and the record is built positionally.
    fields = text.split(seps.field)
    if len(fields) < 15:
        fields += [""] * (15 - len(fields))
    if seps.escape in text:
        return _observation_escaped(fields, order, seps)
    comp, rep = seps.component, seps.repetition
    code = fields[3]
    if rep in code:
        code = code.split(rep, 1)[0]
    codes = code.split(comp, 3)
    n = len(codes)
    unit = fields[6]
    if rep in unit:
        unit = unit.split(rep, 1)[0]
    if comp in unit:
        units = unit.split(comp, 2)
        unit = units[0] or units[1]
    flags = fields[8]
    if comp in flags:
        flags = rep.join(r.split(comp, 1)[0] for r in flags.split(rep))
    observed_ts = fields[14]
    if comp in observed_ts:
        observed_ts = observed_ts.split(comp, 1)[0]
    observed_ts = observed_ts or order.observed_ts
    return ObservationRecord._make(
        (
            order,
            fields[1],  # set_id
            fields[2],  # value_type
            codes[0],  # code
            codes[2] if n > 2 else "",  # code_system
            codes[1] if n > 1 else "",  # code_text
            fields[4],  # sub_id
            fields[5],  # value
            unit,
            fields[7],  # reference_range
            flags,
            fields[11],  # status
            observed_ts,
            parse_ts(observed_ts) if observed_ts else None,
        )
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
