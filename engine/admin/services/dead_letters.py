"""Dead letters: replay and discard one by one, by ids, or in bulk by filter.

A bulk action by filter is taken only with the count its dry run gave (``confirm_count``): if
the count moved since, the operator sees the new one first. Every action needs a reason and is
audited in the same transaction as its journal change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from engine.admin import audit
from engine.admin.roles import Principal, Role
from engine.admin.services.errors import Conflict, Forbidden, ServiceError, require_reason
from engine.channels.config import WorkSettings
from engine.distributed.notify import hand_to_workers
from engine.journal import lookups as queries
from engine.journal import search
from engine.journal.message_tables import State
from engine.journal.search import MessageFilter

#: Most messages one bulk action takes (a larger set: narrow the filter, or repeat).
MAX_BULK = 10_000


@dataclass(frozen=True, slots=True)
class Selection:
    """Explicit ids, or every dead letter matching a filter (its state is forced)."""

    ids: tuple[int, ...] = ()
    filter: MessageFilter | None = None

    def __post_init__(self) -> None:
        if bool(self.ids) == (self.filter is not None):
            raise ServiceError("give either ids or a filter")


def dry_run(conn: Connection, sel: Selection) -> dict[str, Any]:
    """How many dead letters the selection takes now, and their first ids."""
    targets = _targets(conn, sel)
    return {"count": len(targets), "ids": targets[:100]}


def replay(
    conn: Connection,
    who: Principal,
    sel: Selection,
    reason: str,
    confirm_count: int | None = None,
    work: WorkSettings | None = None,
) -> dict[str, Any]:
    reason = _allowed(who, reason)
    targets = _confirmed(conn, sel, confirm_count)
    audit.record(conn, who, "replay", target="message", ids=targets, reason=reason)
    done = queries.replay(conn, targets, who.actor)  # commits the audit row with it
    if work is not None and done:
        hand_to_workers(work, conn, done)
    return {"replayed": done, "skipped": sorted(set(targets) - set(done))}


def discard(
    conn: Connection,
    who: Principal,
    sel: Selection,
    reason: str,
    confirm_count: int | None = None,
) -> dict[str, Any]:
    reason = _allowed(who, reason)
    targets = _confirmed(conn, sel, confirm_count)
    audit.record(conn, who, "discard", target="message", ids=targets, reason=reason)
    done = [i for i in targets if queries.discard(conn, i, reason, who.actor)]
    conn.commit()  # nothing discarded: the audit row still says it was asked
    return {"discarded": done, "skipped": sorted(set(targets) - set(done))}


def _allowed(who: Principal, reason: str) -> str:
    if not who.role.allows(Role.OPERATOR):
        raise Forbidden("replay and discard need the operator role")
    return require_reason(reason)


def _confirmed(conn: Connection, sel: Selection, confirm_count: int | None) -> list[int]:
    targets = _targets(conn, sel)
    if sel.filter is not None and confirm_count != len(targets):
        raise Conflict(
            f"the filter takes {len(targets)} dead letter(s) now: run the dry run, then confirm "
            "with that count"
        )
    if not targets:
        raise ServiceError("no dead letter matches")
    return targets


def _targets(conn: Connection, sel: Selection) -> list[int]:
    if sel.filter is None:
        return sorted(set(sel.ids))
    f = replace(sel.filter, state=State.DEAD_LETTERED, patient=None)
    found = search.matching_ids(conn, f, MAX_BULK + 1)
    if len(found) > MAX_BULK:
        raise ServiceError(f"more than {MAX_BULK:,} dead letters match: narrow the filter")
    return found
