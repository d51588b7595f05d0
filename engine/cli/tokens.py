"""``aiguillage tokens``: bearer tokens for the operations API (stored only as hashes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.admin.roles import Role, os_principal
from engine.admin.services import accounts
from engine.admin.tokens import list_tokens
from engine.cli.common import ConfigOption, JsonOption, console, database, err_console, print_json
from engine.cli.users import service_refusals

app = typer.Typer(no_args_is_help=True, help="API tokens for the operations API")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="who uses it (e.g. the monitoring system)")],
    role: Annotated[Role, typer.Option(help="viewer, operator or admin")],
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Make a token and print it, once: it is stored only as a hash."""
    with database(config) as conn:
        token = accounts.add_token(conn, os_principal(), name, role)
    err_console.print(
        f"API token {name!r} ({role.value}); send it as 'Authorization: Bearer <token>' "
        "(shown once, stored only as a hash):"
    )
    typer.echo(token)


@app.command("list")
def list_(json: JsonOption = False, config: ConfigOption = Path("channels.yaml")) -> None:
    """Tokens, their role and whether they are revoked (never the token)."""
    with database(config) as conn:
        rows = list_tokens(conn)
    if json:
        print_json(
            [
                {
                    "name": t.name,
                    "role": t.role.value,
                    "created_at": t.created_at,
                    "created_by": t.created_by,
                    "revoked_at": t.revoked_at,
                }
                for t in rows
            ]
        )
        return
    table = Table("name", "role", "created", "by", "revoked")
    for t in rows:
        table.add_row(
            t.name,
            t.role.value,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            t.created_by,
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
        )
    console.print(table)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument()], config: ConfigOption = Path("channels.yaml")
) -> None:
    """Revoke every live token of NAME: its next request gets 401."""
    with database(config) as conn, service_refusals():
        count = accounts.revoke_token(conn, os_principal(), name)
    console.print(f"revoked {count} token(s) of {name!r}")
