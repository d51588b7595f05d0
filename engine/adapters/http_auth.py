"""Who sends to an HTTP source: a bearer token (``auth: token``), a client certificate
(``auth: mtls``), or nobody proved (``auth: none``, which must be said explicitly).

Tokens are checked against their SHA-256 hashes (engine.security.senders), held in memory: the
event loop never queries the database per request. The cache is reloaded in a thread every
``REFRESH_SECONDS`` (a revoked token stops within that time) and on an unknown token, at most
once per ``MISS_REFRESH_SECONDS`` (a token just added works at once; a flood of bad tokens costs
one query a second).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from sqlalchemy.engine import Engine as DbEngine
from starlette.requests import Request

from engine.channels.sources import Auth
from engine.security.senders import active_tokens, hash_token

log = structlog.get_logger("engine.http")

REFRESH_SECONDS = 5.0
MISS_REFRESH_SECONDS = 1.0


class TokenCache:
    """The live token hashes of one channel, by hash: the sender's name."""

    def __init__(self, db: DbEngine, channel: str) -> None:
        self.db = db
        self.channel = channel
        self._names: dict[str, str] = {}
        self._missed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def name(self, token: str) -> str | None:
        digest = hash_token(token)
        found = self._names.get(digest)
        if found is None and time.monotonic() - self._missed_at >= MISS_REFRESH_SECONDS:
            self._missed_at = time.monotonic()
            await self.refresh()
            found = self._names.get(digest)
        return found

    async def refresh(self) -> None:
        async with self._lock:  # one query at a time
            self._names = await asyncio.to_thread(self._load)

    async def keep_fresh(self) -> None:
        """Reload every few seconds until cancelled; a failed reload keeps the last list."""
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception as exc:  # the database is away: try again next time
                log.warning(
                    "http_tokens_not_reloaded", channel=self.channel, error=type(exc).__name__
                )

    def _load(self) -> dict[str, str]:
        with self.db.connect() as conn:
            return active_tokens(conn, self.channel)


class Authenticator:
    """The identity a request proves: ``token:<name>``, ``cert:<CN>``, ``""`` (``auth:
    none``), or None (refused: 401)."""

    def __init__(
        self, auth: Auth, tokens: TokenCache | None, identities: dict[tuple[str, int], str]
    ) -> None:
        self.auth = auth
        self.tokens = tokens
        self.identities = identities  # the mTLS identity of each open connection

    async def identify(self, request: Request) -> str | None:
        client = (request.client.host, request.client.port) if request.client else ("", 0)
        certified = self.identities.get(client, "")
        if self.auth == "none":
            return certified
        if self.auth == "mtls":
            return certified or None
        token = bearer(request.headers.get("authorization", ""))
        if not token or self.tokens is None:
            return None
        name = await self.tokens.name(token)
        return f"token:{name}" if name is not None else None


def bearer(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
