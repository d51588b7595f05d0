"""``aiguillage transform``: a dry run of a channel's steps on messages from a file.

Each message goes through the channel's intake checks and steps (validate, filter, transform,
python, and the routes' own steps) exactly as the pipeline runs them, without a database: the
journal is not touched and no destination is written. It prints the outcome (kept and to which
destinations, filtered, or dead letter with its code and reason) and, for each destination's
form, the fields that changed, before and after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Connection

from engine.channels.config import ChannelConfig
from engine.channels.loader import ConfigError, load_channels
from engine.cli.common import ConfigOption, JsonOption, console, err_console, print_json
from engine.cli.send import split_file
from engine.hl7v2.reader import Message
from engine.intake.inbox import rules_for
from engine.journal import lookups, transformed
from engine.journal.message_tables import State
from engine.pipeline.channel_steps import ChannelSteps
from engine.pipeline.payloads import journaled_message, journaled_payload
from engine.pipeline.stages import StageError, stage
from engine.transforms.user.diff import Change, describe, field_changes

CHANNELS = Path("channels.yaml")


def transform(
    file: Annotated[Path, typer.Argument(help="HL7 file (one or more messages)")],
    channel: Annotated[str, typer.Option("--channel", help="the channel whose steps run")],
    config: ConfigOption = CHANNELS,
    json: JsonOption = False,
) -> None:
    """Dry run: the channel's steps on each message of FILE, the fields they change and the
    outcome (kept, filtered, dead letter with its reason). The journal is not touched."""
    try:
        settings = load_channels(config)
    except ConfigError as exc:
        for issue in exc.issues:
            err_console.print(str(issue), highlight=False, markup=False)
        raise typer.Exit(1) from exc
    found = next((c for c in settings.channels if c.name == channel), None)
    if found is None:
        err_console.print(f"no channel {channel!r} in {config}", highlight=False)
        raise typer.Exit(1)
    try:
        payloads = split_file(file.read_bytes())
    except OSError as exc:
        err_console.print(f"cannot read {file}: {exc.strerror}", highlight=False)
        raise typer.Exit(1) from exc
    results = [dry_run(found, p) for p in payloads]
    if json:
        print_json(results)
    else:
        for number, result in enumerate(results, 1):
            _print(number, result)
    raise typer.Exit(1 if any(r["outcome"] == "dead_letter" for r in results) else 0)


def dry_run(channel: ChannelConfig, payload: bytes) -> dict[str, Any]:
    """One message through intake's checks and the channel's steps, as a JSON-ready dict."""
    row = rules_for(channel).prepare(payload, "dry-run").row
    result: dict[str, Any] = {"control_id": row.control_id}
    if row.state is State.DEAD_LETTERED:
        return result | _dead("intake", row.error_code or "", row.error_reason or "")
    try:
        with stage("parse"):
            msg = journaled_payload(row.raw, row.charset)
        stepped = ChannelSteps(channel).run(msg)
    except StageError as exc:
        return result | _dead(exc.stage, exc.error.code, exc.error.reason)
    if stepped.filtered:
        return result | {"outcome": "filtered", "reason": stepped.filtered}
    forms: list[dict[str, Any]] = []
    for form in {id(f): f for f in stepped.forms.values()}.values():
        names = [n for n, f in stepped.forms.items() if f is form]
        changes = (
            field_changes(msg, form)
            if isinstance(msg, Message) and isinstance(form, Message)
            else []
        )
        forms.append({"destinations": names, "changes": [_change(c) for c in changes]})
    return result | {"outcome": "kept", "forms": forms}


def _change(change: Change) -> dict[str, str]:
    return {
        "path": change.path,
        "before": change.before,
        "after": change.after,
        "line": describe(change),
    }


def _dead(where: str, code: str, reason: str) -> dict[str, Any]:
    return {"outcome": "dead_letter", "stage": where, "code": code, "reason": reason}


def _print(number: int, result: dict[str, Any]) -> None:
    head = f"message {number} (MSH-10 {result['control_id']!r})"
    if result["outcome"] == "dead_letter":
        console.print(
            f"{head}: dead letter at {result['stage']}: {result['code']}: {result['reason']}",
            highlight=False,
            markup=False,
        )
        return
    if result["outcome"] == "filtered":
        console.print(f"{head}: filtered ({result['reason']})", highlight=False, markup=False)
        return
    console.print(f"{head}: kept", highlight=False, markup=False)
    for form in result["forms"]:
        to = ", ".join(form["destinations"])
        if not form["changes"]:
            console.print(f"  to {to}: unchanged", highlight=False, markup=False)
            continue
        console.print(f"  to {to}: {len(form['changes'])} change(s)", highlight=False, markup=False)
        for change in form["changes"]:
            console.print(f"    {change['line']}", highlight=False, markup=False)


def journaled_forms(conn: Connection, message_id: int, payloads: bool) -> list[dict[str, Any]]:
    """For ``trace``: each destination's transformed form of a journaled message, with the
    fields that differ from the raw message (and both texts when ``payloads``)."""
    stored = transformed.forms(conn, message_id)
    if not stored:
        return []
    row = lookups.message(conn, message_id)
    if row is None:  # pruned or discarded since its forms were read
        return []
    raw = journaled_message(bytes(row["raw"]), row["charset"])
    out: list[dict[str, Any]] = []
    for destination, payload in stored.items():
        form = journaled_message(payload, row["charset"])
        entry: dict[str, Any] = {
            "destination": destination,
            "changes": [_change(c) for c in field_changes(raw, form)],
        }
        if payloads:
            entry["raw"], entry["transformed"] = raw.text, form.text
        out.append(entry)
    return out


def print_forms(forms: list[dict[str, Any]]) -> None:
    for form in forms:
        console.print(
            f"  transformed for {form['destination']}: {len(form['changes'])} change(s)",
            highlight=False,
            markup=False,
        )
        for change in form["changes"]:
            console.print(f"    {change['line']}", highlight=False, markup=False)
        if "raw" in form:
            for title in ("raw", "transformed"):
                console.print(f"  {title}:", highlight=False, markup=False)
                for segment in form[title].split("\r"):
                    console.print(f"    {segment}", highlight=False, markup=False)
