"""Before ``aiguillage run`` opens anything: every listening port must be free, or none is
opened. A port in use is named with its channel, not shown as a traceback."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from engine.channels.config import ChannelsFile


@dataclass(frozen=True, slots=True)
class Listener:
    owner: str  # "channel hospital_hl7", "the admin listener"
    host: str
    port: int


def listeners(config: ChannelsFile) -> Iterator[Listener]:
    """Every TCP port the engine would listen on (port 0: any free port, never busy)."""
    for channel in config.channels:
        port = getattr(channel.source, "port", None)
        if channel.enabled and isinstance(port, int) and port:
            yield Listener(f"channel {channel.name}", channel.source.host, port)  # type: ignore[union-attr]
    for owner, settings in (
        ("the admin listener", config.engine.admin),
        ("the record listener", config.engine.record_api),
    ):
        if settings is not None and settings.port:
            yield Listener(owner, settings.host, settings.port)


def busy(config: ChannelsFile) -> list[tuple[Listener, str]]:
    """Listeners whose address cannot be bound now, with the reason."""
    out = []
    for listener in listeners(config):
        reason = _bind_problem(listener.host, listener.port)
        if reason:
            out.append((listener, reason))
    return out


def _bind_problem(host: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As asyncio's servers do: a port left in TIME_WAIT is free; one listened on is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return ""
