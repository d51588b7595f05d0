"""``aiguillage alerts``: the alert history, newest first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.alerts.history import history
from engine.cli.common import ConfigOption, JsonOption, console, print_json
from engine.cli.output import print_table, utc_json, zone
from engine.cli.paths import existing_database
from engine.localtime import local_text


def alerts(
    open_only: Annotated[bool, typer.Option("--open", help="only alerts still firing")] = False,
    limit: Annotated[int, typer.Option(help="at most this many", min=1)] = 100,
    json: JsonOption = False,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Alerts fired by the rules under ``alerts:`` in channels.yaml: when each fired and
    resolved, and why."""
    with existing_database(config) as conn:
        rows = history(conn, limit, open_only)
    if json:
        print_json(utc_json(rows))
        return
    tz = zone(config)
    table = Table("id", "rule", "channel", "fired", "resolved", "summary")
    for r in rows:
        resolved = local_text(r["resolved_at"], tz) if r["resolved_at"] else "[red]firing[/red]"
        table.add_row(
            str(r["id"]),
            r["rule"],
            r["channel"],
            local_text(r["fired_at"], tz),
            resolved,
            r["summary"],
        )
    print_table(table)
    console.print(f"{len(rows)} alert(s)")
