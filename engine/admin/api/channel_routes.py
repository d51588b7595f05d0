from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from engine.admin.deps import Context, Viewer
from engine.admin.services.channels import channel_overview

router = APIRouter(tags=["channels"])


@router.get("/channels")
async def channels(ctx: Context, _: Viewer) -> list[dict[str, Any]]:
    """Every channel: state, counts per state, rates over 1, 5 and 60 minutes, last message
    time, oldest waiting age per state (figures at most a few seconds old: ``as_of``)."""
    return await run_in_threadpool(channel_overview, ctx.figures, ctx.state)
