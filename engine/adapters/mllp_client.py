"""MLLP destination: send each message to a peer over TCP and wait for its ACK.

One connection per message (opened, used, closed), a timeout on each step. ``AA``/``CA`` is
success; ``AE``/``CE``, a timeout or a refused connection are transient (retried with the
channel's backoff); ``AR``/``CR`` is permanent (the message is dead-lettered with the peer's
reason). The pipeline waits on the peer: keep ``timeout_seconds`` short.
"""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.adapters.base import BuildContext, Delivery
from engine.adapters.mllp_framing import Frame, FrameDecoder, frame
from engine.errors import DestinationRejected, DestinationUnavailable, EngineError
from engine.hl7v2.reader import Message

MAX_ACK_BYTES = 1024 * 1024


class MllpDestinationConfig(BaseModel):
    """Send messages to an MLLP peer (one connection per message)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["mllp"]
    host: str
    port: int = Field(ge=1, le=65535)
    timeout_seconds: float = Field(default=5.0, gt=0, description="connect, send, and ACK wait")

    def build(self, name: str, context: BuildContext) -> MllpDestination:
        del context  # a peer needs no deployment setting
        return MllpDestination(name, self.host, self.port, self.timeout_seconds)


class MllpDestination:
    transactional = False

    def __init__(self, name: str, host: str, port: int, timeout: float) -> None:
        self.name = name
        self.peer = f"{host}:{port}"
        self.address = (host, port)
        self.timeout = timeout

    def close(self) -> None:
        """Nothing held open between messages."""

    def write(self, delivery: Delivery) -> None:
        try:
            with socket.create_connection(self.address, timeout=self.timeout) as sock:
                sock.sendall(frame(delivery.raw))
                ack = self._read_ack(sock)
        except OSError as exc:
            raise DestinationUnavailable(f"MLLP peer {self.peer}: {exc.strerror or exc}") from exc
        try:
            msg = Message(ack.decode("utf-8", errors="replace"))
        except EngineError as exc:
            raise DestinationUnavailable(f"MLLP peer {self.peer} answered no ACK") from exc
        code, text = msg.get("MSA-1"), msg.get("MSA-3")
        if code in ("AA", "CA"):
            return
        reason = f"MLLP peer {self.peer} answered {code or 'no MSA-1'}" + (
            f": {text}" if text else ""
        )
        if code in ("AR", "CR"):
            raise DestinationRejected(reason)
        raise DestinationUnavailable(reason)

    def _read_ack(self, sock: socket.socket) -> bytes:
        decoder = FrameDecoder(MAX_ACK_BYTES)
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError(0, "connection closed before the ACK")
            for item in decoder.feed(data):
                if isinstance(item, Frame):
                    return item.payload
