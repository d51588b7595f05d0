"""``aiguillage audit``: the audit trail, newest first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.admin import audit as trail
from engine.cli.common import ConfigOption, JsonOption, console, database, print_json

app = typer.Typer(
    help="who did or looked at what: operator actions, payload and trait views",
    invoke_without_command=True,
)


@app.callback()
def show(
    actor: Annotated[str | None, typer.Option(help='e.g. "user:alice", "os:root"')] = None,
    action: Annotated[str | None, typer.Option(help="e.g. replay, view_payload")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    json: JsonOption = False,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """The audit trail, newest first."""
    with database(config) as conn:
        rows = trail.entries(conn, actor=actor, action=action, limit=limit)
    if json:
        print_json(rows)
        return
    table = Table("id", "at (UTC)", "actor", "action", "target", "ids", "reason")
    for r in rows:
        table.add_row(
            str(r["id"]),
            f"{r['at']:%Y-%m-%d %H:%M:%S}",
            r["actor"],
            r["action"],
            r["target"],
            ", ".join(map(str, r["ids"]))[:60],
            r["reason"],
        )
    console.print(table)
