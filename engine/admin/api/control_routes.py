from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from engine.admin.deps import Admin, Context
from engine.admin.services import control

router = APIRouter(tags=["channel control"])


class ControlBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = ""


@router.post("/channels/{channel}/{action}")
async def channel_action(
    channel: str,
    action: Literal["pause", "resume", "restart"],
    ctx: Context,
    who: Admin,
    body: ControlBody | None = None,
) -> dict[str, Any]:
    """Pause, resume or restart a channel (501 where this process runs no channels)."""
    reason = body.reason if body else ""
    return await control.channel_action(ctx.db, who, ctx.control, channel, action, reason)


@router.post("/reload")
async def reload(ctx: Context, who: Admin, body: ControlBody | None = None) -> dict[str, Any]:
    """Reload channels.yaml: validated first; unchanged channels keep running, changed ones
    restart."""
    return await control.reload(ctx.db, who, ctx.control, body.reason if body else "")
