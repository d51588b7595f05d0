"""An admin listener served in-process on a real socket (its own event loop thread), with
operators of each role, their API tokens and journal rows to look at."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from engine.admin.roles import Role
from engine.admin.server import AdminServer
from engine.admin.state import ChannelControl, EngineState
from engine.admin.tokens import add_token
from engine.admin.users import add_user, list_users
from engine.channels.admin_settings import AdminSettings
from engine.channels.config import ChannelsFile
from engine.channels.loader import parse_channels

PASSWORD = "correct horse battery"

CHANNELS = """
engine:
  admin: {host: 127.0.0.1, port: 0}
channels:
  - name: lab
    source: {type: mllp, port: 2575}
    accept: ["*"]
    destinations: {store: {type: record_store}}
  - name: quiet
    source: {type: mllp, port: 2576}
    accept: ["*"]
    destinations: {store: {type: record_store}}
"""


@dataclass
class Admin:
    url: str
    server: AdminServer
    tokens: dict[Role, str] = field(default_factory=dict)

    def bearer(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def config(settings: AdminSettings | None = None) -> ChannelsFile:
    loaded = parse_channels(CHANNELS)
    if settings is None:
        return loaded
    engine = loaded.engine.model_copy(update={"admin": settings})
    return loaded.model_copy(update={"engine": engine})


def add_operators(db: Engine) -> dict[Role, str]:
    """A user and a token for each role (users are named after their role)."""
    with db.begin() as conn:
        tokens = {}
        known = {u.name for u in list_users(conn)}
        for role in Role:
            if role.value not in known:
                add_user(conn, role.value, role, PASSWORD)
            tokens[role] = add_token(conn, f"{role.value}-token", role, "test")
    return tokens


@contextmanager
def serve(
    db: Engine,
    cfg: ChannelsFile | None = None,
    state: EngineState | None = None,
    control: ChannelControl | None = None,
) -> Iterator[Admin]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = AdminServer(cfg or config(), db, state, control)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield Admin(f"http://127.0.0.1:{server.port}", server, add_operators(db))
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
