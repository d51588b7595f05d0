"""Which stored patient a message is about: matching on identifiers, never on traits.

Traits are compared, not trusted (DOMAIN.md §1): two patients with the same names and birth
date are told apart by their INS and local identifiers only, and a match whose strict traits
disagree with the stored ones is an identity conflict (904), never a guess.
"""

from __future__ import annotations

from sqlalchemy import Connection

from engine.errors import IdentityConflict
from engine.identity.model import Identity
from engine.identity.rules import InsDecision
from engine.store import patients
from engine.store.patients import StoredPatient


def identify(
    conn: Connection, identity: Identity, decision: InsDecision, *, adt: bool
) -> StoredPatient | None:
    """The one stored patient ``identity`` names, or None; raises IdentityConflict.

    ``adt``: the message comes from the identity source (it may qualify a provisional
    identity, whose traits it then replaces); results and documents are checked against the
    stored traits instead.
    """
    values = [i.value for i in decision.usable]
    by_ins, by_local = patients.lookup(conn, values, identity.local_ids)
    candidates = sorted({*by_ins, *by_local})
    if len(by_ins) > 1:
        raise IdentityConflict("the NIR and NIA of this message belong to two patients", candidates)
    if len(by_local) > 1:
        raise IdentityConflict(
            f"local identifiers of this message belong to {len(by_local)} different patients",
            candidates,
        )
    if by_ins and by_local and by_ins.keys() != by_local.keys():
        raise IdentityConflict(
            "the INS and the local identifier name two different patients", candidates
        )
    found = next(iter({**by_local, **by_ins}.values()), None)
    if found is None:
        return None
    if values and found.ins and found.ins not in values:
        raise IdentityConflict("the patient has another INS in the store", candidates)
    if found.ins or not adt:
        diffs = identity.traits.differences(found.traits, names=identity.birth_name_typed)
        if diffs:
            raise IdentityConflict(
                f"traits differ from the stored identity: {', '.join(diffs)}", candidates
            )
    return found
