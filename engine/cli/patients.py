"""``aiguillage patients``: the patient's access to their own record (standing in for the Mon
espace santé login), and their legal representatives'."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.common import ConfigOption, database, err_console
from engine.record.model import Role
from engine.store.record_people import add_account

app = typer.Typer(no_args_is_help=True, help="patients' and representatives' access tokens")

InsArgument = Annotated[str, typer.Argument(help="the patient's INS (15 characters)")]


@app.command("enroll")
def enroll(ins: InsArgument, config: ConfigOption = Path("channels.yaml")) -> None:
    """Give the patient an access token to their record (printed once, stored as a hash)."""
    with database(config) as conn:
        token = add_account(conn, ins.strip().upper(), Role.PATIENT)
        conn.commit()
    err_console.print("the patient's access token (shown once):")
    typer.echo(token)


@app.command("add-representative")
def add_representative(
    ins: InsArgument,
    name: Annotated[str, typer.Option("--name", help="the legal representative's name")],
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Give a legal representative a token to the patient's record (printed once)."""
    with database(config) as conn:
        token = add_account(conn, ins.strip().upper(), Role.REPRESENTATIVE, name)
        conn.commit()
    err_console.print(f"{name}'s access token as legal representative (shown once):")
    typer.echo(token)
