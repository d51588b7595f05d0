"""Probable duplicates for the identity cell: pairs of patients that are probably one person.

Candidates share the folded strict traits (birth name, first given name, birth date, sex: the
indexed key of :mod:`engine.store.trait_keys`), so the listing is one grouping query on that
index whatever the size of the store, then a score for each pair of the (small) groups found.
Two qualified identities are never proposed: different INS with the same traits are twins or
namesakes, and two patients never share an INS. A pair the cell dismissed is not proposed again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations, groupby

from sqlalchemy import Connection, func, insert, select

from engine.identity.model import fold
from engine.store.identity_cell import duplicate_dismissals, trait_keys
from engine.store.record_core import patients

_p, _k, _d = patients.c, trait_keys.c, duplicate_dismissals.c

SAME_TRAITS = "same birth name, first given name, birth date and sex (case and accents folded)"
PROVISIONAL_MATCHES_QUALIFIED = "a provisional identity matches a qualified one"


@dataclass(frozen=True, slots=True)
class Pair:
    patient_a: int
    patient_b: int
    #: 0-100: how likely one person (a ranking for the cell, not a probability).
    score: int
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Candidate:
    id: int
    ins: str
    birth_place: str
    given_names: str


def probable_duplicates(conn: Connection) -> list[Pair]:
    """Every pair to look at, best score first."""
    shared = select(_k.trait_key).group_by(_k.trait_key).having(func.count() > 1)
    rows = conn.execute(
        select(_k.trait_key, _p.id, _p.ins, _p.birth_place, _p.given_names)
        .join(patients, _p.id == _k.patient_id)
        .where(_k.trait_key.in_(shared), _p.merged_into.is_(None))
        .order_by(_k.trait_key, _p.id)
    )
    dismissed = {(int(a), int(b)) for a, b in conn.execute(select(_d.patient_a, _d.patient_b))}
    pairs = [
        pair
        for _, group in groupby(rows, key=lambda r: r[0])
        for pair in _pairs([_Candidate(*r[1:]) for r in group])
        if (pair.patient_a, pair.patient_b) not in dismissed
    ]
    return sorted(pairs, key=lambda p: (-p.score, p.patient_a, p.patient_b))


def _pairs(group: Sequence[_Candidate]) -> Iterator[Pair]:
    for a, b in combinations(group, 2):  # in id order: a.id < b.id
        if a.ins and b.ins:
            continue  # twins, or two qualified identities: never one person by traits
        yield _scored(a, b)


def _scored(a: _Candidate, b: _Candidate) -> Pair:
    score, reasons = 60, [SAME_TRAITS]
    if a.ins or b.ins:
        score += 20
        reasons.append(PROVISIONAL_MATCHES_QUALIFIED)
    for label, mine, theirs, match, mismatch in (
        ("birth place", a.birth_place, b.birth_place, 10, -30),
        ("given names", a.given_names, b.given_names, 10, -10),
    ):
        if mine and theirs:
            same = fold(mine) == fold(theirs)
            score += match if same else mismatch
            reasons.append(f"same {label}" if same else f"different {label}")
    return Pair(a.id, b.id, max(0, min(100, score)), tuple(reasons))


def dismiss(
    conn: Connection, first: int, second: int, actor: str, reason: str, now: datetime
) -> None:
    """Record that the pair is not one person (who and why); it is not proposed again."""
    if first == second:
        raise ValueError("a pair needs two different patients")
    found = conn.execute(select(_p.id).where(_p.id.in_([first, second]))).scalars().all()
    missing = sorted({first, second} - set(found))
    if missing:
        raise LookupError(f"no patient {missing[0]} in the store")
    a, b = sorted((first, second))
    already = conn.execute(select(_d.id).where(_d.patient_a == a, _d.patient_b == b)).first()
    if already is not None:
        raise ValueError(f"the pair {a}, {b} was already dismissed")
    conn.execute(
        insert(duplicate_dismissals).values(
            patient_a=a, patient_b=b, at=now, actor=actor, reason=reason
        )
    )
