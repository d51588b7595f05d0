"""Channel control and reload, through the runtime's :class:`ChannelControl`; admin only,
audited (the audit row is written before the action: a crash mid-way still leaves it)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from sqlalchemy.engine import Engine

from engine.admin import audit
from engine.admin.roles import Principal, Role
from engine.admin.services.errors import Forbidden, NotFound, NotImplementedHere, ServiceError
from engine.admin.state import ChannelControl, UnknownChannel
from engine.channels.loader import ConfigError

Action = Literal["pause", "resume", "restart"]


def _allowed(who: Principal, control: ChannelControl | None) -> ChannelControl:
    if not who.role.allows(Role.ADMIN):
        raise Forbidden("channel control and reload need the admin role")
    if control is None:
        raise NotImplementedHere("this process runs no channels it could control")
    return control


async def channel_action(
    db: Engine,
    who: Principal,
    control: ChannelControl | None,
    channel: str,
    action: Action,
    reason: str = "",
) -> dict[str, Any]:
    runtime = _allowed(who, control)
    _audit(db, who, action, [channel], reason)
    try:
        await getattr(runtime, action)(channel)
    except UnknownChannel as exc:
        raise NotFound(f"no channel {channel!r} runs here") from exc
    return {"channel": channel, "action": action, "done": True}


async def reload(
    db: Engine, who: Principal, control: ChannelControl | None, reason: str = ""
) -> dict[str, Any]:
    runtime = _allowed(who, control)
    _audit(db, who, "reload", [], reason)
    try:
        outcome = await runtime.reload()
    except ConfigError as exc:
        raise ServiceError("channels.yaml is invalid, nothing changed: " + str(exc)) from exc
    return {key: list(value) for key, value in asdict(outcome).items()}


def _audit(db: Engine, who: Principal, action: str, ids: list[str], reason: str) -> None:
    with db.begin() as conn:
        audit.record(conn, who, action, target="channel", ids=ids, reason=reason)
