"""``aiguillage identity duplicates``: probable duplicates for the identity cell, and their
dismissal."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.cli.common import (
    ConfigOption,
    JsonOption,
    acting_operator,
    console,
    database,
    err_console,
    print_json,
)
from engine.journal.journal import utcnow
from engine.store import identity_duplicates as duplicates

app = typer.Typer(help="Pairs of patients that are probably one person")

OperatorOption = Annotated[str | None, typer.Option(help="who decides (default: login name)")]


@app.callback(invoke_without_command=True)
def listing(
    ctx: typer.Context,
    json: JsonOption = False,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Pairs of patients that are probably one person, best score first (dismissed pairs
    and two qualified identities are never listed)."""
    if ctx.invoked_subcommand is not None:
        return
    with database(config) as conn:
        pairs = duplicates.probable_duplicates(conn)
    if json:
        print_json([asdict(p) for p in pairs])
        return
    table = Table("patient", "patient", "score", "reasons")
    for p in pairs:
        table.add_row(str(p.patient_a), str(p.patient_b), str(p.score), "; ".join(p.reasons))
    console.print(table)
    console.print(f"{len(pairs)} probable duplicate(s)")


@app.command()
def dismiss(
    first: int,
    second: int,
    reason: Annotated[str, typer.Option(help="why they are two people (kept)")],
    operator: OperatorOption = None,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Record that two patients are not one person: the pair is not proposed again."""
    actor = acting_operator(reason, operator)
    with database(config) as conn:
        try:
            duplicates.dismiss(conn, first, second, actor, reason, utcnow())
        except (LookupError, ValueError) as exc:
            err_console.print(str(exc))
            raise typer.Exit(1) from exc
        conn.commit()
    console.print(f"pair {min(first, second)}, {max(first, second)} dismissed by {actor}")
