"""``aiguillage stats``: per channel, the journal's counts and the source's state."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from engine.channels.config import ChannelConfig, ChannelsFile
from engine.channels.loader import ConfigError, load_channels
from engine.cli.common import ConfigOption, JsonOption, err_console, print_json
from engine.cli.output import print_table
from engine.cli.paths import existing_database
from engine.journal import lookups as queries

COLUMNS = (
    "received",
    "in flight",
    "filtered",
    "delivered",
    "dead-lettered",
    "discarded",
    "held",
    "in review",
)


def stats(config: ConfigOption = Path("channels.yaml"), json: JsonOption = False) -> None:
    """Per channel (every configured one, with or without traffic): its source and state,
    messages received, in flight, filtered, delivered, dead-lettered, discarded, held, in
    review."""
    channels = _configured(config)
    with existing_database(config) as conn:
        rows = queries.stats(conn, [c.name for c in channels.channels] if channels else [])
    sources = {c.name: _source(c) for c in channels.channels} if channels else {}
    if json:
        print_json([{**asdict(r), **_state(sources, r.channel)} for r in rows])
        return
    table = Table("channel", "source", "state", *COLUMNS)
    for r in rows:
        state = _state(sources, r.channel)
        counts = (str(v) for v in list(asdict(r).values())[1:])
        table.add_row(r.channel, state["source"], state["source_state"], *counts)
    print_table(table)


def _configured(config: Path) -> ChannelsFile | None:
    """The channels file, or None without one (the journal's channels are still shown)."""
    if not config.exists():
        return None
    try:
        return load_channels(config)
    except ConfigError as exc:
        err_console.print(f"{config} is invalid:\n{exc}", highlight=False, markup=False)
        raise typer.Exit(2) from exc


def _source(channel: ChannelConfig) -> tuple[str, str]:
    port = getattr(channel.source, "port", None)
    where = f"{channel.source.type}:{port}" if port else str(channel.source.type)
    # Without a running engine to ask, the state is what the file says.
    return where, "configured" if channel.enabled else "disabled"


def _state(sources: dict[str, tuple[str, str]], channel: str) -> dict[str, str]:
    where, state = sources.get(channel, ("", "not configured"))
    return {"source": where, "source_state": state}
