"""``aiguillage professionals``: health professionals who read the shared record (RPPS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.cli.common import ConfigOption, JsonOption, console, database, err_console, print_json
from engine.store.record_people import (
    Professional,
    add_professional,
    list_professionals,
    revoke_professional,
)

app = typer.Typer(no_args_is_help=True, help="health professionals of the shared record (RPPS)")


@app.command("add")
def add(
    rpps: Annotated[str, typer.Argument(help="RPPS number (11 digits, or 8 + RPPS)")],
    name: Annotated[str, typer.Option("--name", help="the professional's name")],
    profession: Annotated[str, typer.Option("--profession", help="e.g. médecin")] = "",
    facility: Annotated[
        str, typer.Option("--facility", help="their facility, as documents and visits name it")
    ] = "",
    token: Annotated[
        bool, typer.Option("--token/--no-token", help="a demo token (else: client certificate)")
    ] = True,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Register a professional; print their token once (stored only as a hash)."""
    with database(config) as conn:
        secret = add_professional(conn, Professional(rpps, name, profession, facility), token)
        conn.commit()
    if not secret:
        err_console.print(f"professional {rpps} registered (client certificate only)")
        return
    err_console.print(f"professional {rpps} may read the record with this token (shown once):")
    typer.echo(secret)


@app.command("list")
def list_(config: ConfigOption = Path("channels.yaml"), json: JsonOption = False) -> None:
    with database(config) as conn:
        rows = list_professionals(conn)
    if json:
        print_json(rows)
        return
    table = Table("RPPS", "name", "profession", "facility", "revoked")
    for r in rows:
        revoked = r["revoked_at"]
        table.add_row(
            str(r["rpps"]),
            str(r["name"]),
            str(r["profession"]),
            str(r["facility"]),
            f"{revoked:%Y-%m-%d %H:%M}" if revoked else "",
        )
    console.print(table)


@app.command("revoke")
def revoke(
    rpps: Annotated[str, typer.Argument()], config: ConfigOption = Path("channels.yaml")
) -> None:
    """Revoke a professional: their token and certificate stop working at once."""
    with database(config) as conn:
        count = revoke_professional(conn, rpps)
        conn.commit()
    if not count:
        err_console.print(f"no active professional {rpps}")
        raise typer.Exit(1)
    console.print(f"revoked {rpps}")
