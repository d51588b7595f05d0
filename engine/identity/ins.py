"""The INS matricule (NIR or NIA) and its OIDs: validation and classification (DOMAIN.md §1).

A matricule is 13 characters plus a 2-digit key, ``key = 97 - (n mod 97)`` where ``n`` is the
13 characters read as a number, Corsican departments ``2A`` and ``2B`` being read as ``19`` and
``18`` for the key only. Months and sex digits are not checked: fictitious months and NIA
digits exist.
"""

from __future__ import annotations

import re
from enum import StrEnum

from engine.errors import InvalidIns

_MATRICULE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}\Z")
_CORSICA = {"2A": "19", "2B": "18"}


class InsKind(StrEnum):
    """What an OID says a matricule is."""

    NIR = "nir"  # production INS-NIR
    NIA = "nia"  # production INS-NIA
    NIR_TEST = "nir_test"
    NIR_DEMO = "nir_demo"


INS_OIDS: dict[str, InsKind] = {
    "1.2.250.1.213.1.4.8": InsKind.NIR,
    "1.2.250.1.213.1.4.9": InsKind.NIA,
    "1.2.250.1.213.1.4.10": InsKind.NIR_TEST,
    "1.2.250.1.213.1.4.11": InsKind.NIR_DEMO,
}
#: NIR / NIA used as a social-security (billing) number: not an INS.
BILLING_OIDS = frozenset({"1.2.250.1.213.1.4.13", "1.2.250.1.213.1.4.14"})
#: Kinds a production deployment refuses.
NOT_PRODUCTION = frozenset({InsKind.NIR_TEST, InsKind.NIR_DEMO})


def classify_oid(oid: str) -> InsKind | None:
    """The kind of INS an OID names, or None (billing numbers and other OIDs are not INS)."""
    return INS_OIDS.get(oid.strip())


def nir_key(body: str) -> int:
    """The key of a 13-character NIR/NIA body (``2A``/``2B`` allowed in positions 6-7)."""
    digits = body[:5] + _CORSICA.get(body[5:7], body[5:7]) + body[7:]
    return 97 - int(digits) % 97


def check_matricule(value: str) -> str:
    """``value`` when it is a well-formed matricule with the right key; raises InvalidIns.

    The reason names what is wrong, never the value (it reaches logs: contract 8).
    """
    if len(value) != 15:
        raise InvalidIns(f"an INS matricule has 15 characters, this one has {len(value)}")
    upper = value.upper()
    if not _MATRICULE.match(upper):
        raise InvalidIns("an INS matricule is digits only, except 2A/2B for Corsica")
    if nir_key(upper[:13]) != int(upper[13:]):
        raise InvalidIns("the INS matricule's key does not match its 13 first characters")
    return upper
