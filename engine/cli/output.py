"""Output for people and for scripts: tables whole when piped, local times with their zone,
JSON times in UTC with ``Z``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.cli.common import configured_engine, console
from engine.localtime import utc_z

#: Wide enough for any table: when piped, lines must stay whole for grep, not cut at 80.
PIPE_WIDTH = 10_000


def print_table(table: Table) -> None:
    """The table at the terminal's width, or whole when stdout is not a terminal."""
    if console.is_terminal:
        console.print(table)
    else:  # rich caps a print's width at its console's (80 when piped)
        Console(width=PIPE_WIDTH, soft_wrap=True).print(table)


def utc_json(value: Any) -> Any:
    """``value`` with every datetime as ISO-8601 UTC ending in ``Z`` (for ``--json``)."""
    if isinstance(value, datetime):
        return utc_z(value)
    if isinstance(value, dict):
        return {k: utc_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [utc_json(v) for v in value]
    return value


def zone(config: Path) -> str:
    """``engine.timezone`` of the channels file (Europe/Paris without one)."""
    return configured_engine(config).timezone
