"""Professionals, patients and legal representatives who read the shared record, and the
actor a token or a client certificate proves. Tokens are shown once and stored as SHA-256
hashes (as sender tokens: ``engine.security.senders``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from engine.record.model import Actor, Role
from engine.record.rules import rpps_of
from engine.security.senders import hash_token, new_token
from engine.store.record_tables import accounts, professionals


@dataclass(frozen=True, slots=True)
class Professional:
    rpps: str
    name: str
    profession: str
    facility: str


def add_professional(conn: Connection, p: Professional, with_token: bool = True) -> str:
    """Register (or update) a professional; returns a new token (``""`` without one)."""
    token = new_token() if with_token else ""
    values = {
        "name": p.name,
        "profession": p.profession,
        "facility": p.facility,
        "token_hash": hash_token(token) if token else None,
        "revoked_at": None,
    }
    rpps = rpps_of(p.rpps)
    found = conn.execute(select(professionals.c.id).where(professionals.c.rpps == rpps)).first()
    if found is None:
        conn.execute(professionals.insert().values(rpps=rpps, created_at=_now(), **values))
    else:
        conn.execute(update(professionals).where(professionals.c.id == found[0]).values(**values))
    return token


def list_professionals(conn: Connection) -> list[dict[str, object]]:
    c = professionals.c
    query = select(c.rpps, c.name, c.profession, c.facility, c.created_at, c.revoked_at)
    return [dict(r._mapping) for r in conn.execute(query.order_by(c.rpps))]


def revoke_professional(conn: Connection, rpps: str) -> int:
    c = professionals.c
    return conn.execute(
        update(professionals)
        .where(c.rpps == rpps_of(rpps), c.revoked_at.is_(None))
        .values(revoked_at=_now(), token_hash=None)
    ).rowcount


def add_account(conn: Connection, ins: str, role: Role, name: str = "") -> str:
    """Enroll the patient (``Role.PATIENT``) or a legal representative; returns the token."""
    token = new_token()
    conn.execute(
        accounts.insert().values(
            ins=ins, role=role.value, name=name, token_hash=hash_token(token), created_at=_now()
        )
    )
    return token


def actor_for_token(conn: Connection, token: str) -> Actor | None:
    """The professional, patient or representative holding ``token``; None if unknown or
    revoked."""
    digest = hash_token(token)
    p = professionals.c
    row = conn.execute(
        select(p.rpps, p.name, p.profession, p.facility).where(
            p.token_hash == digest, p.revoked_at.is_(None)
        )
    ).first()
    if row is not None:
        return Actor(Role.PROFESSIONAL, row.rpps, row.name, row.profession, row.facility)
    a = accounts.c
    found = conn.execute(
        select(a.ins, a.role, a.name).where(a.token_hash == digest, a.revoked_at.is_(None))
    ).first()
    if found is None:
        return None
    return Actor(Role(found.role), found.ins, found.name)


def actor_for_rpps(conn: Connection, rpps: str) -> Actor | None:
    """A registered, unrevoked professional (a client certificate names the RPPS)."""
    p = professionals.c
    row = conn.execute(
        select(p.rpps, p.name, p.profession, p.facility).where(
            p.rpps == rpps_of(rpps), p.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Actor(Role.PROFESSIONAL, row.rpps, row.name, row.profession, row.facility)


def _now() -> datetime:
    return datetime.now(UTC)
