"""Side-by-side identities for the operator: what a message says against stored patients."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from engine.cda.standalone import CdaPayload
from engine.errors import EngineError
from engine.identity.hl7 import hl7_identity
from engine.identity.model import STRICT_TRAITS, TRAIT_NAMES, Identity, fold
from engine.journal import lookups
from engine.pipeline.payloads import journaled_payload
from engine.store import patients

ROWS = ("ins", "ins_oid", "identity_status", *TRAIT_NAMES)


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    values: dict[str, str]


def message_identity(conn: Connection, message_id: int) -> Identity | None:
    """The identity in a journaled message's PID (a standalone CDA's recordTarget), or None
    (unreadable, no PID)."""
    row = lookups.message(conn, message_id)
    if row is None:
        return None
    try:
        msg = journaled_payload(row["raw"], row["charset"])
        if isinstance(msg, CdaPayload):
            return msg.identity()
    except EngineError:  # undecodable, not HL7 v2 nor a CDA with one patient: nothing to show
        return None
    pid = msg.segment("PID")
    return None if pid is None else hl7_identity(msg, pid)


def message_column(identity: Identity) -> Column:
    ins = identity.preferred_ins
    values = {
        "ins": ins.value if ins else "",
        "ins_oid": ins.oid if ins else "",
        "identity_status": "~".join(identity.reliability),
    }
    values |= {t: getattr(identity.traits, t) for t in TRAIT_NAMES}
    return Column("message", values)


def patient_column(conn: Connection, patient_id: int) -> Column | None:
    stored = patients.by_id(conn, patient_id)
    if stored is None:
        return None
    values = {
        "ins": stored.ins,
        "ins_oid": stored.ins_oid,
        "identity_status": stored.identity_status,
    }
    values |= {t: getattr(stored.traits, t) for t in TRAIT_NAMES}
    return Column(f"patient {stored.id}", values)


def differing(a: Column, b: Column) -> set[str]:
    """Rows given on both sides that differ (names folded as the matching rules do)."""
    out = set()
    for row in ROWS:
        x, y = a.values.get(row, ""), b.values.get(row, "")
        if x and y and (fold(x) != fold(y) if row in STRICT_TRAITS else x != y):
            out.add(row)
    return out
