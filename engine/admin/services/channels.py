"""Channels as operators watch them: state, counts, rates, last message, oldest waiting."""

from __future__ import annotations

from typing import Any

from engine.admin.figures import WAITING, ChannelFigures, FiguresCache
from engine.admin.state import UNKNOWN, EngineState


def channel_overview(figures: FiguresCache, state: EngineState | None) -> list[dict[str, Any]]:
    """Every configured channel (with or without traffic), then channels found only in the
    journal (removed from the configuration: their messages stay visible)."""
    snapshot = figures.get()
    states = {s.channel: s.state for s in state.sources()} if state is not None else {}
    ordered = sorted(snapshot.channels.values(), key=lambda f: (not f.configured, f.channel))
    return [_channel(f, states, snapshot.taken_at) for f in ordered]


def _channel(f: ChannelFigures, states: dict[str, str], taken_at: Any) -> dict[str, Any]:
    state = "removed" if not f.configured else states.get(f.channel, UNKNOWN)
    return {
        "name": f.channel,
        "configured": f.configured,
        "state": state,
        "counts": f.counts,
        "waiting": {s.value: f.counts.get(s, 0) for s in WAITING},
        "rates_per_minute": f.rates,
        "last_received_at": f.last_received_at,
        "oldest_waiting_seconds": f.oldest_waiting_seconds(taken_at),
        "as_of": taken_at,
    }
