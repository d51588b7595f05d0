"""Whether a message's INS may be used (pure; DOMAIN.md §1-2).

The INS is used only when PID-32 says ``VALI`` (how a qualified identity travels in HL7 v2) and
ZFD-4 does not say the birth date was corrected; otherwise the message is integrated on its
local identifier alone. A used INS must have a valid key, an OID this deployment accepts and
its strict traits.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import IdentityConflict, IncompleteTraits, InsRefused
from engine.identity.ins import NOT_PRODUCTION, check_matricule
from engine.identity.model import Identity, Ins

QUALIFIED = "VALI"


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    #: Accept the test (.10) and demo (.11) INS OIDs: test and demo deployments only.
    accept_test_ins: bool = False
    #: A message without a usable INS is an error 903 (a channel feeding the DMP).
    require_ins: bool = False


@dataclass(frozen=True, slots=True)
class InsDecision:
    """The INS values a message may be matched on (preferred first), or why none."""

    usable: tuple[Ins, ...]
    why_not: str = ""

    @property
    def preferred(self) -> Ins | None:
        return self.usable[0] if self.usable else None


def decide_ins(identity: Identity, policy: IdentityPolicy) -> InsDecision:
    """Which INS of ``identity`` to use; raises InvalidIns, InsRefused or IncompleteTraits."""
    preferred = identity.preferred_ins
    if preferred is None:
        why = "no INS in the message"
        if identity.ignored_ins:
            why = "only billing numbers or unknown INS OIDs in the message"
        return InsDecision((), why)
    if QUALIFIED not in identity.reliability:
        return InsDecision((), "INS without VALI in PID-32: integrated without the INS")
    if identity.birth_date_corrected:
        return InsDecision((), "birth date corrected (ZFD-4): integrated without the INS")
    nirs = {i.value for i in identity.ins if not i.is_nia}
    if len(nirs) > 1:
        raise IdentityConflict("the message carries two different NIR")
    usable = []
    for ins in (preferred, *(i for i in identity.ins if i != preferred)):
        value = check_matricule(ins.value)
        if ins.kind in NOT_PRODUCTION and not policy.accept_test_ins:
            raise InsRefused(
                f"an INS with the {ins.kind} OID {ins.oid} is refused by this deployment "
                "(engine.identity.accept_test_ins is false)"
            )
        usable.append(Ins(value, ins.oid, ins.kind))
    missing = identity.traits.missing()
    if missing:
        raise IncompleteTraits(f"an INS must travel with its traits; missing: {', '.join(missing)}")
    return InsDecision(tuple(usable))
