"""TLS on the MLLP source: the handshake after admission, and who the client proved to be.

The listener accepts plain TCP and upgrades each admitted connection with ``start_tls``
rather than ``create_server(ssl=...)``: peer allow-lists and connection caps then apply before
any handshake is paid for, and a failed handshake (no client certificate, a wrong CA, a
timeout) is logged by address and counted, where asyncio would only mention it in debug mode.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol

from engine.security.tls import ServerTls, certificate_identity


class Upgradable(Protocol):
    """The connection being upgraded."""

    @property
    def closing(self) -> bool: ...

    def refused(self, reason: str) -> None: ...

    def ready(self, transport: asyncio.Transport, sender: str) -> None: ...


async def handshake(
    conn: Upgradable,
    protocol: asyncio.BaseProtocol,
    raw: asyncio.Transport,
    tls: ServerTls,
    context: ssl.SSLContext,
    timeout: float,
) -> None:
    """Upgrade ``raw`` to TLS; hand the connection its TLS transport and its proved identity
    (``cert:<CN>`` under mTLS, else ``""``), or refuse it."""
    loop = asyncio.get_running_loop()
    try:
        transport = await loop.start_tls(
            raw, protocol, context, server_side=True, ssl_handshake_timeout=timeout
        )
    except Exception:  # ssl.SSLError, a timeout, a reset: the client is refused, not the loop
        if not conn.closing:
            conn.refused("tls_handshake_failed")
        raw.close()
        return
    if transport is None or conn.closing:
        return
    assert isinstance(transport, asyncio.Transport)
    cert = transport.get_extra_info("peercert")
    mutual = tls.client_ca_file is not None
    if mutual and not tls.subject_allowed(cert):
        conn.refused("subject_not_allowed")
        transport.close()
        return
    conn.ready(transport, certificate_identity(cert) if mutual else "")
