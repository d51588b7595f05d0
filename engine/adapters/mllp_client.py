"""MLLP destination: send each message to a peer over TCP and wait for its ACK.

One connection per message (opened, used, closed), one deadline for the whole exchange.
``AA``/``CA`` is success (for the message sent: MSA-2 is checked); ``AE``/``CE``, a timeout or
a refused connection are transient (retried with the channel's backoff); ``AR``/``CR`` is
permanent (dead-lettered with the peer's reason). The pipeline waits on the peer (with
``pipeline: thread``, so does intake's commit): keep ``timeout_seconds`` short.
"""

from __future__ import annotations

import socket
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.adapters.base import BuildContext, Delivery
from engine.adapters.mllp_framing import Frame, FrameDecoder, frame
from engine.errors import (
    DestinationRejected,
    DestinationUnavailable,
    EngineError,
    MessageTooLarge,
)
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
        deadline = time.monotonic() + self.timeout
        try:
            with socket.create_connection(self.address, timeout=self.timeout) as sock:
                sock.sendall(frame(delivery.raw))
                ack = self._read_ack(sock, deadline)
        except TimeoutError as exc:
            raise DestinationUnavailable(
                f"MLLP peer {self.peer}: no ACK within {self.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise DestinationUnavailable(f"MLLP peer {self.peer}: {exc.strerror or exc}") from exc
        except MessageTooLarge as exc:  # the peer's answer, not our message
            raise DestinationUnavailable(f"MLLP peer {self.peer}: {exc.reason}") from exc
        try:
            msg = Message(ack.decode("utf-8", errors="replace"))
        except EngineError as exc:
            raise DestinationUnavailable(f"MLLP peer {self.peer} answered no ACK") from exc
        code, text = msg.get("MSA-1"), msg.get("MSA-3")
        sent = delivery.message.get("MSH-10")
        if sent and msg.get("MSA-2") not in ("", sent):  # an answer to another message
            raise DestinationUnavailable(
                f"MLLP peer {self.peer} acknowledged another message (MSA-2)"
            )
        if code in ("AA", "CA"):
            return
        reason = f"MLLP peer {self.peer} answered {code or 'no MSA-1'}" + (
            f": {text}" if text else ""
        )
        if code in ("AR", "CR"):
            raise DestinationRejected(reason)
        raise DestinationUnavailable(reason)

    def _read_ack(self, sock: socket.socket, deadline: float) -> bytes:
        """The first frame the peer sends, within one deadline for the whole answer (a peer
        trickling bytes must not hold the pipeline); bytes outside frames count too."""
        decoder = FrameDecoder(MAX_ACK_BYTES)
        received = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError(0, "connection closed before the ACK")
            received += len(data)
            if received > MAX_ACK_BYTES:
                raise MessageTooLarge(f"answer over {MAX_ACK_BYTES:,} bytes without an ACK")
            for item in decoder.feed(data):
                if isinstance(item, Frame):
                    return item.payload
