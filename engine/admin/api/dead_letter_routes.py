from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from engine.admin.api.filters import FilterModel
from engine.admin.deps import Conn, Context, Operator
from engine.admin.services import dead_letters
from engine.admin.services.dead_letters import Selection

router = APIRouter(tags=["dead letters"])


class DeadLetterAction(BaseModel):
    """Explicit ``ids``, or a ``filter``: with a filter, run ``dry_run`` first and send its
    ``count`` back as ``confirm_count``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(default_factory=list)
    filter: FilterModel | None = None
    reason: str = ""
    dry_run: bool = False
    confirm_count: int | None = None

    def selection(self) -> Selection:
        return Selection(
            ids=tuple(self.ids), filter=self.filter.to_filter() if self.filter else None
        )


@router.post("/dead-letters/replay")
def replay(body: DeadLetterAction, conn: Conn, ctx: Context, who: Operator) -> dict[str, Any]:
    sel = body.selection()
    if body.dry_run:
        return dead_letters.dry_run(conn, sel)
    return dead_letters.replay(
        conn, who, sel, body.reason, body.confirm_count, ctx.config.engine.work
    )


@router.post("/dead-letters/discard")
def discard(body: DeadLetterAction, conn: Conn, who: Operator) -> dict[str, Any]:
    sel = body.selection()
    if body.dry_run:
        return dead_letters.dry_run(conn, sel)
    return dead_letters.discard(conn, who, sel, body.reason, body.confirm_count)
