"""Claimed batches for the worker: the distributed claim as a batch, the batch's senders, and
what a rolled-back first pass leaves for its redo."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select

from engine.journal.claim import Group, claim_groups, group_of
from engine.journal.message_tables import State, messages
from engine.journal.records import Pending
from engine.pipeline.pipeline import Pipeline


def group_batch(
    conn: Connection, upto: dict[Group, int], channels: dict[str, Pipeline], now: datetime
) -> list[Pending]:
    """The claimed rows of the groups as a batch: a group whose earliest pending message waits
    for its retry is left out from there on (later messages wait behind it)."""
    batch: list[Pending] = []
    blocked: set[Group] = set()
    for row in claim_groups(conn, upto, channels):
        ident, channel, raw_, charset, key, attempts, delivered_to, state, next_at = row
        group = group_of(ident, channel, key)
        if group in blocked:
            continue
        if state == State.RETRYING and next_at is not None and _aware(next_at) > now:
            blocked.add(group)
            continue
        done_to = set(filter(None, delivered_to.split(",")))
        batch.append(Pending(ident, channel, raw_, charset, key, attempts, done_to))
    return batch


def read_senders(conn: Connection, batch: list[Pending]) -> None:
    """The batch's journaled senders in one query (the destinations file under them)."""
    wanted = [p.id for p in batch if p.sender is None]
    if not wanted:
        return
    m = messages.c
    found = {r[0]: r[1] for r in conn.execute(select(m.id, m.sender).where(m.id.in_(wanted)))}
    for p in batch:
        if p.id in found:
            p.sender = str(found[p.id] or "")


def not_undone(
    batch: list[Pending], before: dict[int, set[str]], pipelines: dict[str, Pipeline]
) -> dict[int, set[str]]:
    """After a rolled-back first pass: the deliveries its rollback did not undo (a network
    destination already written), by message, which the redo must not repeat."""
    out: dict[int, set[str]] = {}
    for pending in batch:
        destinations = pipelines[pending.channel].destinations
        out[pending.id] = {
            n
            for n in pending.delivered_to - before[pending.id]
            if n in destinations and not destinations[n].transactional
        }
    return out


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
