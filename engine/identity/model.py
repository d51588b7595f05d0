"""One typed patient identity, whatever message it came from (HL7 v2 PID or CDA recordTarget).

Extraction (:mod:`engine.identity.hl7`, :mod:`engine.cda.patient_traits`) only reads what the
message says; whether its INS may be used is decided by
:func:`engine.identity.rules.decide_ins`, and matching against the store by
:mod:`engine.pipeline.identify.resolve`.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from engine.identity.ins import InsKind

#: Traits that must travel with an INS and must agree with the stored ones (DOMAIN.md §1).
STRICT_TRAITS = ("birth_name", "first_given_name", "birth_date", "sex")


@dataclass(frozen=True, slots=True)
class Ins:
    """An INS as the message carries it: matricule, OID and what the OID says it is."""

    value: str
    oid: str
    kind: InsKind

    @property
    def is_nia(self) -> bool:
        return self.kind is InsKind.NIA


@dataclass(frozen=True, slots=True)
class LocalId:
    """A local patient identifier (IPP...): value, assigning authority, type (CX-5)."""

    value: str
    authority: str = ""  # CX-4.1 namespace (CDA: empty)
    authority_oid: str = ""  # CX-4.2 universal id (CDA: id/@root)
    type_code: str = ""  # CX-5: PI, MR, ...

    @property
    def keys(self) -> tuple[str, ...]:
        """``value^namespace`` and ``value^OID`` (``value^`` without either): two identifiers
        are the same when they share one (see :meth:`same_as`)."""
        if not self.authority and not self.authority_oid:
            return (f"{self.value}^",)
        return tuple(f"{self.value}^{a}" for a in (self.authority, self.authority_oid) if a)

    def same_as(self, value: str, authority: str, authority_oid: str) -> bool:
        """The same identifier: same value under the same namespace or the same OID (senders
        write CX-4 as ``CHU-X``, ``CHU-X&1.2.250...&ISO`` or ``&1.2.250...&ISO``), or under
        no authority at all on both sides."""
        if value != self.value:
            return False
        if not (self.authority or self.authority_oid or authority or authority_oid):
            return True
        return bool(
            (self.authority and self.authority == authority)
            or (self.authority_oid and self.authority_oid == authority_oid)
        )


@dataclass(frozen=True, slots=True)
class Traits:
    """The INS traits plus the name in use. Empty string = not given."""

    birth_name: str = ""  # PID-5 type L / family[@qualifier="BR"]
    first_given_name: str = ""  # XPN-2 / given[@qualifier="BR"]
    given_names: str = ""  # XPN-3 / given without qualifier: the whole list
    birth_date: str = ""  # YYYYMMDD
    sex: str = ""  # M, F, U...
    birth_place: str = ""  # INSEE code of the place of birth
    used_name: str = ""  # PID-5 type D / family[@qualifier="CL"]

    def missing(self) -> list[str]:
        """The strict traits that are empty."""
        return [t for t in STRICT_TRAITS if not getattr(self, t)]

    def differences(self, stored: Traits, names: bool = True) -> list[str]:
        """Strict traits given on both sides that differ after folding; ``names=False``
        compares birth date and sex only (the message's name is not typed as a birth name)."""
        out = []
        for name in STRICT_TRAITS if names else ("birth_date", "sex"):
            mine, theirs = getattr(self, name), getattr(stored, name)
            if mine and theirs and fold(mine) != fold(theirs):
                out.append(name)
        return out


#: Every trait, in declaration order (also the store's column names).
TRAIT_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Traits))


@dataclass(frozen=True, slots=True)
class Identity:
    """What a message says about its patient."""

    ins: tuple[Ins, ...] = ()  # every INS the message carries (NIR and NIA both in an A31)
    local_ids: tuple[LocalId, ...] = ()
    traits: Traits = field(default_factory=Traits)
    #: Identity reliability codes (PID-32, e.g. VALI, PROV); a CDA INS counts as VALI.
    reliability: tuple[str, ...] = ()
    #: ZFD-4 = Y: the birth date was corrected, the INS must not be used.
    birth_date_corrected: bool = False
    #: The birth name is typed as one (PID-5 type L, CDA qualifier BR), not an untyped name.
    birth_name_typed: bool = True
    #: ``.13``/``.14`` billing numbers and INS-typed ids with another OID, ignored as INS.
    ignored_ins: int = 0

    @property
    def preferred_ins(self) -> Ins | None:
        """The INS to consider: a NIR wins over an NIA (DOMAIN.md §2)."""
        for candidate in self.ins:
            if not candidate.is_nia:
                return candidate
        return self.ins[0] if self.ins else None


@lru_cache(maxsize=65536)  # names repeat across the messages of a patient
def fold(text: str) -> str:
    """Case- and accent-folded text for comparing names; hyphens and apostrophes are kept."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def trait_key(birth_name: str, first_given_name: str, birth_date: str, sex: str) -> str | None:
    """The folded strict traits as one text (``name|given|date|sex``): equal keys mean
    homonyms or probable duplicates, never the same identity by themselves. None when a
    trait is missing (nothing to compare)."""
    if not (birth_name and first_given_name and birth_date and sex):
        return None
    return "|".join((fold(birth_name), fold(first_given_name), birth_date, sex.upper()))
