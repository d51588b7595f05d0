"""Claimed batches for the worker: the locks of a distributed worker's groups, and what a
rolled-back first pass leaves for its redo."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, text

from engine.journal.claim import Group, lock_key
from engine.journal.records import Pending
from engine.pipeline.pipeline import Pipeline

#: The groups' locks in one round trip, without waiting: the keys obtained.
_TRY_LOCKS = text(
    "SELECT k FROM unnest(CAST(:keys AS bigint[])) AS t(k) WHERE pg_try_advisory_xact_lock(k)"
)


def lock_groups(conn: Connection, groups: Collection[Group]) -> set[Group]:
    """Lock the groups for the transaction, without waiting; the groups another worker holds.

    PostgreSQL: transaction-scoped advisory locks, one key per group. SQLite: a write
    transaction (``BEGIN IMMEDIATE``, from the claim's first statement) already shuts every
    other writer out until it ends, so no group is ever busy.
    """
    if conn.dialect.name != "postgresql":
        return set()
    keys = {g: lock_key(g) for g in groups}
    got = set(conn.execute(_TRY_LOCKS, {"keys": sorted(keys.values())}).scalars())
    return {g for g, key in keys.items() if key not in got}


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
