"""``aiguillage dlq``: list, show, replay and discard dead letters."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.admin import audit, record_views
from engine.admin.roles import os_principal
from engine.cli.common import (
    ConfigOption,
    JsonOption,
    acting_operator,
    console,
    database,
    err_console,
    hand_over,
    print_json,
)
from engine.cli.dlq_outcome import known_channel_or_exit, print_outcomes, wait_for_outcomes
from engine.cli.output import print_table, utc_json, zone
from engine.cli.paths import existing_database
from engine.journal import lookups as queries
from engine.localtime import local_text, parse_since

app = typer.Typer(no_args_is_help=True, help="Dead letters: messages that could not be processed")


@app.command("list")
def list_(
    channel: Annotated[str | None, typer.Option(help="only this channel")] = None,
    code: Annotated[str | None, typer.Option(help="only this error code")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="dead-lettered since: 30m, 2h, 1d, or a date (2026-12-03T08:00)"),
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many", min=1)] = 1000,
    json: JsonOption = False,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """List dead letters, oldest first."""
    tz = zone(config)
    try:
        after = parse_since(since, tz) if since else None
    except ValueError as exc:
        err_console.print(f"--since {exc}", highlight=False)
        raise typer.Exit(2) from exc
    with existing_database(config) as conn:
        known_channel_or_exit(conn, config, channel)
        rows = queries.dead_letters(conn, channel, code, limit, after)
        total = queries.count_dead_letters(conn, channel, code, after)
    if json:
        print_json(utc_json(rows))
        return
    table = Table("id", "channel", "received", "type", "control id", "stage", "code", "reason")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["channel"],
            local_text(r["received_at"], tz),
            f"{r['message_type'] or '?'}^{r['trigger'] or '?'}",
            r["control_id"] or "",
            r["error_stage"] or "",
            r["error_code"] or "",
            (r["error_reason"] or "")[:80],
        )
    print_table(table)
    more = f" of {total} (--limit)" if total > len(rows) else ""
    console.print(f"{len(rows)}{more} dead letter(s)")


@app.command()
def show(message_id: int, config: ConfigOption = Path("channels.yaml")) -> None:
    """Show one dead letter: error, attempts and original bytes."""
    with database(config) as conn:
        msg = queries.message(conn, message_id)
        events = queries.history(conn, message_id)
        if msg is not None:  # the original bytes are about to be shown: on record first
            audit.record(conn, os_principal(), "view_payload", target="message", ids=[message_id])
            shown = record_views.message_patients(conn, message_id)
            record_views.log_views(
                conn,
                os_principal(),
                shown,
                record_views.READ_MESSAGE,
                target=f"message:{message_id}",
                reason="aiguillage dlq show",
            )
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
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="requeue and return, without the outcome")
    ] = False,
    wait_seconds: Annotated[float, typer.Option(help="how long to wait for the outcome")] = 30,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Send dead letters through the pipeline again (idempotent: twice applies once), wait
    for the running engine to process them and print each outcome (exit 1 if one failed)."""
    if not ids and not channel:
        err_console.print("give message ids or --channel")
        raise typer.Exit(2)
    with existing_database(config) as conn:
        known_channel_or_exit(conn, config, channel)
        targets = list(ids or []) or queries.select_dead_letters(conn, channel or "", code)
        who = os_principal()
        audit.record(conn, who, "replay", target="message", ids=targets, reason=reason)
        done = queries.replay(conn, targets, getpass.getuser())  # commits the audit row too
        hand_over(config, conn, done)
        skipped = sorted(set(targets) - set(done))
        console.print(f"requeued {len(done)} message(s): {done}")
        if skipped:
            console.print(
                f"skipped {len(skipped)} (not dead letters, or oversized messages kept only "
                f"in part, which cannot be replayed): {skipped}"
            )
        if no_wait or not done:
            return
        outcomes = wait_for_outcomes(conn, done, wait_seconds)
    console.print("outcome:")
    if print_outcomes(outcomes):
        raise typer.Exit(1)


@app.command()
def discard(
    ids: Annotated[list[int] | None, typer.Argument(help="message ids")] = None,
    reason: Annotated[str, typer.Option(help="why (kept in the journal)")] = "",
    channel: Annotated[str | None, typer.Option(help="every dead letter of a channel")] = None,
    code: Annotated[str | None, typer.Option(help="with --channel: only this error code")] = None,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Give up on dead letters (or held messages) for good; they stay in the journal,
    marked discarded. Exit 1 if one of the ids could not be discarded."""
    if not ids and not channel:
        err_console.print("give message ids or --channel")
        raise typer.Exit(2)
    actor = acting_operator(reason)
    with existing_database(config) as conn:
        known_channel_or_exit(conn, config, channel)
        targets = list(ids or []) or queries.select_dead_letters(conn, channel or "", code)
        who = os_principal()
        audit.record(conn, who, "discard", target="message", ids=targets, reason=reason)
        # Each discard commits (with the audit row for the first).
        done = [i for i in targets if queries.discard(conn, i, reason, actor)]
    for i in done:
        console.print(f"discarded {i}")
    refused = sorted(set(targets) - set(done))
    for i in refused:
        err_console.print(f"message {i} is not a dead letter nor held")
    if refused:
        raise typer.Exit(1)
