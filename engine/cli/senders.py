"""``aiguillage senders``: the bearer tokens HTTP sources accept (stored only as hashes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.channels.loader import ConfigError, load_channels
from engine.cli.common import ConfigOption, JsonOption, console, database, err_console, print_json
from engine.security.senders import add_sender, list_senders, revoke_sender

app = typer.Typer(no_args_is_help=True, help="senders authenticated by a bearer token (HTTP)")

ChannelOption = Annotated[str, typer.Option("--channel", help="the HTTP channel it sends to")]


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="who sends (e.g. the lab's interface name)")],
    channel: ChannelOption,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Register a sender and print its token, once: it is stored only as a hash."""
    _require_http_channel(config, channel)
    with database(config) as conn:
        token = add_sender(conn, name, channel)
        conn.commit()
    err_console.print(
        f"sender {name!r} may POST to channel {channel!r} with this token "
        "(shown once, stored only as a hash):"
    )
    typer.echo(token)


@app.command("list")
def list_(
    config: ConfigOption = Path("channels.yaml"),
    channel: Annotated[str | None, typer.Option("--channel")] = None,
    json: JsonOption = False,
) -> None:
    """Senders, their channel and whether their token is revoked (never the token)."""
    with database(config) as conn:
        rows = list_senders(conn, channel)
    if json:
        print_json(
            [
                {
                    "name": r.name,
                    "channel": r.channel,
                    "created_at": r.created_at,
                    "revoked_at": r.revoked_at,
                }
                for r in rows
            ]
        )
        return
    table = Table("name", "channel", "created", "revoked")
    for r in rows:
        table.add_row(
            r.name,
            r.channel,
            f"{r.created_at:%Y-%m-%d %H:%M}",
            f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "",
        )
    console.print(table)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument()],
    config: ConfigOption = Path("channels.yaml"),
    channel: Annotated[str | None, typer.Option("--channel")] = None,
) -> None:
    """Revoke a sender's tokens: its next request gets 401."""
    with database(config) as conn:
        count = revoke_sender(conn, name, channel)
        conn.commit()
    if not count:
        err_console.print(f"no live token for sender {name!r}")
        raise typer.Exit(1)
    console.print(f"revoked {count} token(s) of {name!r}")


def _require_http_channel(config: ConfigOption, channel: str) -> None:
    try:
        channels = load_channels(config).channels
    except ConfigError as exc:
        err_console.print(f"{config} is invalid:\n{exc}")
        raise typer.Exit(2) from exc
    found = next((c for c in channels if c.name == channel), None)
    if found is None or found.source.type != "http":
        names = ", ".join(c.name for c in channels if c.source.type == "http") or "none"
        err_console.print(f"no HTTP channel {channel!r} in {config} (HTTP channels: {names})")
        raise typer.Exit(2)
