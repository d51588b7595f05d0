"""``aiguillage dlq``: list, show, replay and discard dead letters."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.admin import audit
from engine.admin.roles import os_principal
from engine.cli.common import (
    ConfigOption,
    JsonOption,
    console,
    database,
    err_console,
    hand_over,
    print_json,
)
from engine.journal import queries

app = typer.Typer(no_args_is_help=True, help="Dead letters: messages that could not be processed")


@app.command("list")
def list_(
    channel: Annotated[str | None, typer.Option(help="only this channel")] = None,
    code: Annotated[str | None, typer.Option(help="only this error code")] = None,
    json: JsonOption = False,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """List dead letters, oldest first."""
    with database(config) as conn:
        rows = queries.dead_letters(conn, channel, code)
    if json:
        print_json(rows)
        return
    table = Table("id", "channel", "received", "type", "control id", "stage", "code", "reason")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["channel"],
            r["received_at"].strftime("%Y-%m-%d %H:%M:%S"),
            f"{r['message_type'] or '?'}^{r['trigger'] or '?'}",
            r["control_id"] or "",
            r["error_stage"] or "",
            r["error_code"] or "",
            (r["error_reason"] or "")[:80],
        )
    console.print(table)
    console.print(f"{len(rows)} dead letter(s)")


@app.command()
def show(message_id: int, config: ConfigOption = Path("channels.yaml")) -> None:
    """Show one dead letter: error, attempts and original bytes."""
    with database(config) as conn:
        msg = queries.message(conn, message_id)
        events = queries.history(conn, message_id)
        if msg is not None:  # the original bytes are about to be shown: on record first
            audit.record(conn, os_principal(), "view_payload", target="message", ids=[message_id])
            conn.commit()
    if msg is None:
        err_console.print(f"no message {message_id}")
        raise typer.Exit(1)
    for key in (
        "id",
        "channel",
        "state",
        "received_at",
        "peer",
        "sender_app",
        "sender_facility",
        "control_id",
        "message_type",
        "trigger",
        "attempts",
        "ack_code",
        "error_stage",
        "error_code",
        "error_reason",
    ):
        console.print(f"[bold]{key}[/bold]: {msg[key]}", highlight=False)
    console.print("[bold]history[/bold]:")
    for e in events:
        who = f" by {e['actor']}" if e["actor"] else ""
        console.print(
            f"  {e['at']:%Y-%m-%d %H:%M:%S} {e['state']} attempt {e['attempt']} "
            f"{e['stage'] or ''} {e['code'] or ''}: {e['reason'] or ''}{who}",
            highlight=False,
        )
    console.print(f"[bold]original bytes[/bold] ({msg['size']} bytes, {msg['charset'] or '?'}):")
    text = msg["raw"].decode(msg["charset"] or "latin-1", errors="replace")
    typer.echo(text.replace("\r", "\n"))


@app.command()
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="message ids")] = None,
    channel: Annotated[str | None, typer.Option(help="every dead letter of a channel")] = None,
    code: Annotated[str | None, typer.Option(help="with --channel: only this error code")] = None,
    reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")] = "",
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Send dead letters through the pipeline again (idempotent: twice applies once)."""
    if not ids and not channel:
        err_console.print("give message ids or --channel")
        raise typer.Exit(2)
    with database(config) as conn:
        targets = list(ids or []) or queries.select_dead_letters(conn, channel or "", code)
        who = os_principal()
        audit.record(conn, who, "replay", target="message", ids=targets, reason=reason)
        done = queries.replay(conn, targets, getpass.getuser())  # commits the audit row too
        hand_over(config, conn, done)
    skipped = sorted(set(targets) - set(done))
    console.print(f"requeued {len(done)} message(s): {done}")
    if skipped:
        console.print(
            f"skipped {len(skipped)} (not dead letters, or oversized messages kept only in "
            f"part, which cannot be replayed): {skipped}"
        )


@app.command()
def discard(
    message_id: int,
    reason: Annotated[str, typer.Option(help="why (kept in the journal)")],
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Give up on a dead letter (or a held message) for good; it stays in the journal,
    marked discarded."""
    with database(config) as conn:
        who = os_principal()
        audit.record(conn, who, "discard", target="message", ids=[message_id], reason=reason)
        ok = queries.discard(conn, message_id, reason, getpass.getuser())  # commits both
    if not ok:
        err_console.print(f"message {message_id} is not a dead letter nor held")
        raise typer.Exit(1)
    console.print(f"discarded {message_id}")
