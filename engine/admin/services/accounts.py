"""Operator accounts and API tokens, for the CLI and the API alike: every change audited in
its own transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

from engine.admin import audit, tokens
from engine.admin import users as user_store
from engine.admin.roles import Principal, Role
from engine.admin.services.errors import Conflict, Forbidden, NotFound, ServiceError
from engine.admin.users import AccountError, DuplicateUser, UnknownUser, User


def _admin(who: Principal) -> None:
    if not who.role.allows(Role.ADMIN):
        raise Forbidden("managing users and tokens needs the admin role")


def users(conn: Connection) -> list[User]:
    return user_store.list_users(conn)


def add(conn: Connection, who: Principal, name: str, role: Role, password: str) -> None:
    _admin(who)
    with _refused(conn):
        user_store.add_user(conn, name, role, password)
    audit.record(conn, who, "user_add", target="user", ids=[name], detail={"role": role.value})
    conn.commit()


def passwd(conn: Connection, who: Principal, name: str, password: str) -> None:
    _admin(who)
    with _refused(conn):
        user_store.set_password(conn, name, password)
    audit.record(conn, who, "user_passwd", target="user", ids=[name])
    conn.commit()


def disable(conn: Connection, who: Principal, name: str, reason: str = "") -> None:
    _admin(who)
    with _refused(conn):
        user_store.disable_user(conn, name)
    audit.record(conn, who, "user_disable", target="user", ids=[name], reason=reason)
    conn.commit()


def add_token(conn: Connection, who: Principal, name: str, role: Role) -> str:
    _admin(who)
    token = tokens.add_token(conn, name, role, who.actor)
    audit.record(conn, who, "token_add", target="token", ids=[name], detail={"role": role.value})
    conn.commit()
    return token


def revoke_token(conn: Connection, who: Principal, name: str) -> int:
    _admin(who)
    count = tokens.revoke_token(conn, name)
    if not count:
        conn.rollback()
        raise NotFound(f"no live token named {name!r}")
    audit.record(conn, who, "token_revoke", target="token", ids=[name])
    conn.commit()
    return count


@contextmanager
def _refused(conn: Connection) -> Iterator[None]:
    try:
        yield
    except AccountError as exc:
        conn.rollback()
        kind: Callable[[str], ServiceError] = {UnknownUser: NotFound, DuplicateUser: Conflict}.get(
            type(exc), ServiceError
        )
        raise kind(str(exc)) from exc
