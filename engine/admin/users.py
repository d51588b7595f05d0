"""Operator accounts: argon2 password hashes, roles, lockout after repeated failed logins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from engine.admin.roles import Role
from engine.admin.tables import sessions, users

_u = users.c
_hasher = PasswordHasher()
#: Verified when the name is unknown, so that the answer takes as long as for a known name.
_DUMMY_HASH = _hasher.hash("not a password of anyone")
MIN_PASSWORD = 8


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None
    locked_until: datetime | None


class AccountError(ValueError):
    """A user change that cannot be made (reason names the account, never the password)."""


class UnknownUser(AccountError):
    pass


class DuplicateUser(AccountError):
    pass


def add_user(conn: Connection, name: str, role: Role, password: str) -> int:
    _check_password(password)
    if _find(conn, name) is not None:
        raise DuplicateUser(f"user {name!r} already exists")
    return int(
        conn.execute(
            insert(users)
            .values(name=name, role=role, password_hash=_hasher.hash(password), created_at=_now())
            .returning(_u.id)
        ).scalar_one()
    )


def set_password(conn: Connection, name: str, password: str) -> None:
    """A new password; it also unlocks the account and ends its sessions."""
    _check_password(password)
    user = _require(conn, name)
    conn.execute(
        update(users)
        .where(_u.id == user.id)
        .values(password_hash=_hasher.hash(password), failed_logins=0, locked_until=None)
    )
    conn.execute(delete(sessions).where(sessions.c.user_id == user.id))


def disable_user(conn: Connection, name: str) -> None:
    """The account can no longer log in; its open sessions end now."""
    user = _require(conn, name)
    conn.execute(update(users).where(_u.id == user.id).values(disabled_at=_now()))
    conn.execute(delete(sessions).where(sessions.c.user_id == user.id))


def list_users(conn: Connection) -> list[User]:
    rows = conn.execute(
        select(_u.id, _u.name, _u.role, _u.created_at, _u.disabled_at, _u.locked_until).order_by(
            _u.name
        )
    )
    return [User(r[0], r[1], Role(r[2]), r[3], r[4], r[5]) for r in rows]


def authenticate(
    conn: Connection, name: str, password: str, max_failures: int, lockout: timedelta
) -> User | None:
    """The user if ``password`` is theirs and the account is enabled and not locked.

    ``max_failures`` failures in a row lock the account for ``lockout`` (a correct password
    meanwhile is refused too, so guessing gains nothing); a success resets the count. The
    caller commits, so that failures are counted whatever the outcome."""
    row = conn.execute(select(users).where(_u.name == name)).first()
    if row is None:
        _verify(_DUMMY_HASH, password)
        return None
    r = row._mapping
    now = _now()
    if r["disabled_at"] is not None or (r["locked_until"] is not None and r["locked_until"] > now):
        _verify(_DUMMY_HASH, password)
        return None
    if not _verify(r["password_hash"], password):
        failures = r["failed_logins"] + 1
        locked = now + lockout if failures >= max_failures else None
        conn.execute(
            update(users)
            .where(_u.id == r["id"])
            .values(failed_logins=0 if locked else failures, locked_until=locked)
        )
        return None
    conn.execute(update(users).where(_u.id == r["id"]).values(failed_logins=0, locked_until=None))
    return User(r["id"], r["name"], Role(r["role"]), r["created_at"], None, None)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")


def _find(conn: Connection, name: str) -> User | None:
    return next((u for u in list_users(conn) if u.name == name), None)


def _require(conn: Connection, name: str) -> User:
    user = _find(conn, name)
    if user is None:
        raise UnknownUser(f"no user {name!r}")
    return user


def _now() -> datetime:
    return datetime.now(UTC)
