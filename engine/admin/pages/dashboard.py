"""The dashboard: a tile per channel (state, counts, rates, the last hour's sparkline).

It refreshes itself: ``refresh.js`` fetches ``/?tiles=1`` (the tiles alone) every few seconds
and swaps them in unless the keyboard focus is inside them; without script, a meta refresh.
Both read the figures snapshot the API and ``/metrics`` share, never a count of their own.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from engine.admin.deps import context
from engine.admin.pages.activity import POINTS, Activity
from engine.admin.pages.common import Who, page, router, to_login
from engine.admin.pages.sparkline import sparkline
from engine.admin.services.channels import channel_overview

#: The fewest seconds between refreshes (the figures' own age, ``metrics_refresh_seconds``,
#: sets the pace: refreshing faster would show the same snapshot).
MIN_REFRESH_SECONDS = 2

_DOWN = {"failed", "stopped"}
_SLOWED = {"paused", "waiting_for_broker"}


@router.get("/")
async def dashboard(request: Request, who: Who, tiles: bool = False) -> Response:
    if who is None:
        return to_login()
    channels = await run_in_threadpool(_tiles, request)
    name = "dashboard_tiles.html" if tiles else "dashboard.html"
    every = max(MIN_REFRESH_SECONDS, math.ceil(context(request).settings.metrics_refresh_seconds))
    return page(request, who, name, {"channels": channels, "refresh": every})


def _tiles(request: Request) -> list[dict[str, Any]]:
    ctx = context(request)
    overview = channel_overview(ctx.figures, ctx.state)
    series = _activity(request).series(datetime.now(UTC))
    return [_tile(c, series.get(c["name"], [0] * POINTS)) for c in overview]


def _activity(request: Request) -> Activity:
    """One per app: it keeps the counts of the minutes that have ended."""
    state = request.app.state
    if not hasattr(state, "console_activity"):
        state.console_activity = Activity(context(request).reader)
    found: Activity = state.console_activity
    return found


def _tile(channel: dict[str, Any], minutes: list[int]) -> dict[str, Any]:
    counts = channel["counts"]
    waiting = channel["waiting"]
    dead = counts.get("dead_lettered", 0)
    return {
        **channel,
        "dead_letters": dead,
        "delivered": counts.get("delivered", 0),
        "total": sum(counts.values()),
        "tone": _tone(channel["state"], dead, waiting),
        "oldest": max(channel["oldest_waiting_seconds"].values(), default=None),
        "spark": sparkline(minutes, f"{channel['name']}, messages per minute"),
    }


def _tone(state: str, dead: int, waiting: dict[str, int]) -> str:
    """The tile's colour: bad (down, or dead letters), warn (paused, waiting for its broker,
    messages held or in review), good (running), idle (unknown here, or removed)."""
    if state in _DOWN or dead:
        return "bad"
    if state in _SLOWED or waiting.get("held") or waiting.get("review"):
        return "warn"
    return "good" if state == "running" else "idle"
