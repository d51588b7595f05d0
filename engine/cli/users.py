"""``aiguillage users``: console operators (argon2 password hashes, roles, lockout)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.admin.roles import Role, os_principal
from engine.admin.services import accounts
from engine.admin.services.errors import ServiceError
from engine.cli.common import ConfigOption, JsonOption, console, database, err_console, print_json

app = typer.Typer(no_args_is_help=True, help="console operators and their roles")

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from standard input")
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[Role, typer.Option(help="viewer, operator or admin")],
    password_stdin: PasswordStdin = False,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Add an operator; the password is prompted for (or read with --password-stdin)."""
    password = _password(password_stdin)
    with database(config) as conn, service_refusals():
        accounts.add(conn, os_principal(), name, role, password)
    console.print(f"user {name!r} added ({role.value})")


@app.command("passwd")
def passwd(
    name: Annotated[str, typer.Argument()],
    password_stdin: PasswordStdin = False,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Set a new password (it also unlocks the account and ends its sessions)."""
    password = _password(password_stdin)
    with database(config) as conn, service_refusals():
        accounts.passwd(conn, os_principal(), name, password)
    console.print(f"password of {name!r} changed")


@app.command("disable")
def disable(
    name: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")] = "",
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Disable an account: it can no longer log in, its sessions end now."""
    with database(config) as conn, service_refusals():
        accounts.disable(conn, os_principal(), name, reason)
    console.print(f"user {name!r} disabled")


@app.command("list")
def list_(json: JsonOption = False, config: ConfigOption = Path("channels.yaml")) -> None:
    """Operators, their role, and whether they are disabled or locked."""
    with database(config) as conn:
        rows = accounts.users(conn)
    if json:
        print_json(
            [
                {
                    "name": u.name,
                    "role": u.role.value,
                    "created_at": u.created_at,
                    "disabled_at": u.disabled_at,
                    "locked_until": u.locked_until,
                }
                for u in rows
            ]
        )
        return
    table = Table("name", "role", "created", "disabled", "locked until")
    for u in rows:
        table.add_row(
            u.name,
            u.role.value,
            f"{u.created_at:%Y-%m-%d %H:%M}",
            f"{u.disabled_at:%Y-%m-%d %H:%M}" if u.disabled_at else "",
            f"{u.locked_until:%Y-%m-%d %H:%M}" if u.locked_until else "",
        )
    console.print(table)


@contextmanager
def service_refusals() -> Iterator[None]:
    """A refused change: its reason on stderr, exit 1."""
    try:
        yield
    except ServiceError as exc:
        err_console.print(exc.reason, highlight=False, markup=False)
        raise typer.Exit(1) from exc
