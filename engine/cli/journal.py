"""``aiguillage journal``: the journal's upkeep (``prune``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.channels.journal_retention import JournalRetention
from engine.channels.loader import ConfigError, load_channels
from engine.cli.common import ConfigOption, JsonOption, console, err_console, print_json
from engine.cli.paths import existing_database
from engine.journal.prune import Cutoffs, cutoffs, prune, would_prune

app = typer.Typer(no_args_is_help=True, help="the journal's upkeep")


def _settings(config: Path, days: float | None) -> tuple[JournalRetention, Cutoffs]:
    """The retention (the file's, or the defaults without one) and its cutoffs now."""
    retention = JournalRetention()
    windows: dict[str, float | None] = {}
    if config.exists():
        try:
            channels = load_channels(config)
        except ConfigError as exc:
            err_console.print(f"[red]{config} is invalid[/red]:\n{exc}")
            raise typer.Exit(2) from exc
        from engine.journal.prune_job import reuse_windows

        retention = channels.engine.journal_retention
        windows = reuse_windows(channels)
    return retention, cutoffs(datetime.now(UTC), retention.days if days is None else days, windows)


@app.command("prune")
def prune_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report, delete nothing")] = False,
    older_than: Annotated[
        float | None,
        typer.Option("--older-than", min=0.0, help="days (default: engine.journal_retention.days)"),
    ] = None,
    config: ConfigOption = Path("channels.yaml"),
    json: JsonOption = False,
) -> None:
    """Delete the delivered, filtered and discarded messages older than the retention, with
    their events, holds, outbox rows and transformed forms (dead letters, held messages and
    messages in review stay); counts only are shown."""
    retention, cut = _settings(config, older_than)
    with existing_database(config) as conn:
        report: dict[str, Any]
        if dry_run:
            report = would_prune(conn, cut)
            conn.rollback()
        else:
            done = prune(conn.engine, cut, retention.batch)
            report = {"messages": done.messages, "batches": done.batches, "rows": done.rows}
    report["dry_run"] = dry_run
    report["older_than_days"] = retention.days if older_than is None else older_than
    if json:
        print_json(report)
        return
    verb = "would be pruned" if dry_run else "pruned"
    console.print(
        f"{report['messages']} message(s) older than {report['older_than_days']:g} day(s) {verb}",
        highlight=False,
    )
    for line in report.get("by_channel_state", []):
        console.print(f"  {line['channel']} {line['state']}: {line['messages']}", highlight=False)
    for table, count in sorted(report["rows"].items()):
        if table != "messages":
            console.print(f"  {table}: {count} row(s)", highlight=False)
