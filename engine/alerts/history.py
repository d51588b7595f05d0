"""Alert state and history: a finding that starts to hold fires an alert (a new open row), one
that stops holding resolves it; each transition is returned once, for the notifiers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.alerts.rules import Finding
from engine.alerts.tables import alerts

RULE_REMOVED = "rule no longer in channels.yaml"


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Literal["fired", "resolved"]
    alert_id: int
    rule: str
    channel: str
    at: datetime
    summary: str


def apply(
    conn: Connection, findings: Iterable[Finding], rules: set[str], now: datetime
) -> list[Transition]:
    """Record what changed since the last evaluation and commit. ``rules`` are the names
    configured now: an open alert of a rule since removed resolves."""
    a = alerts.c
    open_ = {
        (r.rule, r.channel): r
        for r in conn.execute(
            select(a.id, a.rule, a.channel, a.summary).where(a.resolved_at.is_(None))
        )
    }
    out: list[Transition] = []
    seen: set[tuple[str, str]] = set()
    for f in findings:
        key = (f.rule, f.channel)
        seen.add(key)
        if f.firing and key not in open_:
            fired = _fire(conn, f, now)
            if fired is not None:
                out.append(fired)
        elif not f.firing and key in open_:
            row = open_[key]
            if _resolve(conn, row.id, now, "condition cleared"):
                out.append(Transition("resolved", row.id, f.rule, f.channel, now, row.summary))
    for key, row in open_.items():
        if key[0] not in rules and _resolve(conn, row.id, now, RULE_REMOVED):
            out.append(Transition("resolved", row.id, key[0], key[1], now, row.summary))
    conn.commit()
    return out


def _fire(conn: Connection, f: Finding, now: datetime) -> Transition | None:
    """A new open row; ``None`` when another process fired the same alert first."""
    try:
        with conn.begin_nested():
            alert_id = conn.execute(
                insert(alerts)
                .values(rule=f.rule, channel=f.channel, fired_at=now, summary=f.summary)
                .returning(alerts.c.id)
            ).scalar_one()
    except IntegrityError:
        return None
    return Transition("fired", alert_id, f.rule, f.channel, now, f.summary)


def _resolve(conn: Connection, alert_id: int, now: datetime, resolution: str) -> bool:
    done = conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.resolved_at.is_(None))
        .values(resolved_at=now, resolution=resolution)
    ).rowcount
    return bool(done)


def history(conn: Connection, limit: int = 100, open_only: bool = False) -> list[dict[str, Any]]:
    """Alerts, newest first."""
    query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
    if open_only:
        query = query.where(alerts.c.resolved_at.is_(None))
    return [dict(r._mapping) for r in conn.execute(query)]
