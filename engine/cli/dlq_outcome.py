"""What a ``dlq`` command checks before it acts, and the wait for a replay's outcome."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import Connection

from engine.channels.loader import ConfigError, load_channels
from engine.cli.common import console, err_console
from engine.journal import lookups as queries
from engine.journal.message_tables import State


def known_channel_or_exit(conn: Connection, config: Path, channel: str | None) -> None:
    """An unknown ``--channel`` is a mistake (a typo would list or replay nothing): exit 2.
    Known: configured, or with messages in the journal (a channel since removed)."""
    if not channel:
        return
    configured: set[str] = set()
    if config.exists():
        try:
            configured = {c.name for c in load_channels(config).channels}
        except ConfigError:
            configured = set()
    if channel in configured or queries.known_channel(conn, channel):
        return
    names = ", ".join(sorted(configured)) or "none configured"
    err_console.print(f"no channel {channel!r} (channels: {names})", highlight=False)
    raise typer.Exit(2)


#: A running engine takes a requeued message within half a second (its idle poll); none
#: taken after this long: no engine is running (or it is busy), and the wait stops.
FIRST_TAKE_SECONDS = 3.0


def wait_for_outcomes(conn: Connection, ids: list[int], timeout: float) -> list[dict[str, Any]]:
    """Poll until the engine has taken every requeued message (none still ``received``), or
    ``timeout`` seconds, or :data:`FIRST_TAKE_SECONDS` without any taken; returns their
    states."""
    start = time.monotonic()
    while True:
        conn.rollback()  # a fresh snapshot each time
        rows = queries.states(conn, ids)
        waiting = sum(r["state"] == State.RECEIVED for r in rows)
        elapsed = time.monotonic() - start
        none_taken = waiting == len(rows) and elapsed > FIRST_TAKE_SECONDS
        if not waiting or elapsed > timeout or none_taken:
            return rows
        time.sleep(0.1)


def print_outcomes(rows: list[dict[str, Any]]) -> int:
    """One line per message; returns how many the engine took and did not deliver (or
    filter). Messages not taken yet are not failures: they run when the engine takes them."""
    bad = 0
    for r in rows:
        state = r["state"]
        note = f" ({r['error_code']}: {r['error_reason']})" if r["error_code"] else ""
        if state == State.RECEIVED:
            note = " (not taken yet: engine stopped or busy; it runs when taken)"
        else:
            bad += state not in (State.DELIVERED, State.FILTERED)
        console.print(f"  #{r['id']} {r['channel']}: {state}{note}", highlight=False)
    return bad
