"""Bind everything first, or nothing: every port the engine will listen on is reserved before
any listener serves, and held while the engine waits for its database.

A reservation is a bound socket that does not listen, with ``SO_REUSEADDR``: another program
can neither bind nor listen on the port meanwhile, while the engine's own listeners (asyncio
and uvicorn set ``SO_REUSEADDR`` too) bind beside it and listen. Connections are refused until
the listener opens, as when the engine is down.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field

from engine.channels.config import ChannelsFile
from engine.runtime.ports import Listener, listeners


class ListenersUnavailable(Exception):
    """Ports the engine cannot listen on, each named with its owner; nothing was left open."""

    def __init__(self, problems: list[tuple[Listener, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        return [
            f"{listener.owner}: port {listener.port} on {listener.host} is {reason}"
            for listener, reason in self.problems
        ]


def bind_problem(exc: OSError) -> str:
    return "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))


@dataclass
class Reservation:
    """Bound, not listening sockets, by owner (``"channel hospital_hl7"``)."""

    sockets: dict[str, socket.socket] = field(default_factory=dict)

    @classmethod
    def take(cls, config: ChannelsFile, only: set[str] | None = None) -> Reservation:
        """Reserve every listener's port (those whose owner is in ``only``), or none: raises
        :class:`ListenersUnavailable` naming each port that cannot be had."""
        taken = cls()
        problems: list[tuple[Listener, str]] = []
        for listener in listeners(config):
            if only is not None and listener.owner not in only:
                continue
            try:
                taken.sockets[listener.owner] = _reserve(listener.host, listener.port)
            except OSError as exc:
                problems.append((listener, bind_problem(exc)))
        if problems:
            taken.release()
            raise ListenersUnavailable(problems)
        return taken

    def release(self, owner: str | None = None) -> None:
        """Let go of one owner's port (its listener now holds it), or of all."""
        owners = list(self.sockets) if owner is None else [owner]
        for name in owners:
            sock = self.sockets.pop(name, None)
            if sock is not None:
                sock.close()


def _reserve(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def channel_owner(name: str) -> str:
    return f"channel {name}"


def channel_listener(config: ChannelsFile, name: str) -> Listener | None:
    owner = channel_owner(name)
    return next((item for item in listeners(config) if item.owner == owner), None)
