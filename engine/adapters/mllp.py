"""MLLP source: an asyncio server that journals each message before it acknowledges it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from engine.adapters.mllp_framing import Frame, FrameDecoder, FrameTooLarge, Junk, frame
from engine.adapters.receive import log_outcome
from engine.errors import EngineError

if TYPE_CHECKING:  # the runtime imports this module through the channel models
    from engine.routes.committer import GroupCommitter
    from engine.routes.intake import Intake, Prepared
    from engine.routes.outcomes import EndState
    from engine.routes.writer import Result

log = structlog.get_logger("engine.mllp")

#: A connection with this many messages waiting for their commit stops being read.
MAX_OUTSTANDING = 64


class MllpSourceConfig(BaseModel):
    """Receive HL7 v2 messages (or, with ``payload: cda``, CDA documents) over MLLP (TCP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["mllp"]
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(ge=1, le=65535)
    payload: Literal["hl7v2", "cda"] = Field(
        default="hl7v2",
        description="what a frame holds: an HL7 v2 message, or a CDA document (ACKed in HL7)",
    )
    max_message_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="larger messages get a NAK and a close"
    )
    idle_timeout_seconds: float = Field(
        default=300, gt=0, description="close connections silent this long"
    )
    default_charset: str = Field(
        default="UNICODE UTF-8", description="MSH-18 value assumed when MSH-18 is empty"
    )
    max_connections: int = Field(default=256, ge=1)
    always_ack: bool = Field(
        default=True,
        description=(
            "answer every message even when MSH-15 says NE/ER/SU: MLLP senders block "
            "until they get an answer"
        ),
    )
    ack_after: Literal["commit", "processing"] = Field(
        default="commit",
        description=(
            "commit: ACK once the message is journaled (fastest); processing: ACK once the "
            "pipeline is done with it, so that a refusal there (schema, CI-SIS, identity) "
            "reaches the sender as AR/AE with its reason (original acknowledgement mode)"
        ),
    )
    ack_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="ack_after processing: past this, answer AA (the message is kept)",
    )

    def server(self, intake: Intake, committer: GroupCommitter) -> MllpServer:
        return MllpServer(self, intake, committer)


class MllpServer:
    """One listening socket of a channel."""

    def __init__(self, config: MllpSourceConfig, intake: Intake, committer: GroupCommitter) -> None:
        self.config = config
        self.intake = intake
        self.committer = committer
        self.connections: set[MllpConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: MllpConnection(self), self.config.host, self.config.port, reuse_address=True
        )
        log.info("mllp_listening", channel=self.intake.channel, port=self.bound_port)

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight messages get their ACK, then close connections."""
        if self._server is None:
            return
        if self.config.ack_after == "processing":  # answers may wait for the pipeline
            grace = max(grace, self.config.ack_timeout_seconds + 1)
        self._server.close()
        deadline = asyncio.get_running_loop().time() + grace
        while any(c.outstanding for c in self.connections):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.close("engine_stopping")
        await self._server.wait_closed()


class MllpConnection(asyncio.Protocol):
    def __init__(self, server: MllpServer) -> None:
        self.server = server
        self.decoder = FrameDecoder(server.config.max_message_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.outstanding = 0
        self.received = 0
        self.junk_bytes = 0
        self._paused = False
        self._closing = False
        self._closing_after_nak = False
        self._idle: asyncio.TimerHandle | None = None
        self._last_answer: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = f"{host}:{port}"
        if len(self.server.connections) >= self.server.config.max_connections:
            log.warning("mllp_connection_refused", peer=self.peer, reason="max_connections")
            transport.close()
            return
        self.server.connections.add(self)
        self._touch()
        log.info("mllp_connected", channel=self.server.intake.channel, peer=self.peer)

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            items = self.decoder.feed(data)
        except FrameTooLarge as exc:
            self._handle(exc.decoded)
            self._reject_oversized(exc)
            return
        self._handle(items)

    def _handle(self, items: list[Frame | Junk]) -> None:
        for item in items:
            if isinstance(item, Frame):
                self._receive(item.payload)
            elif isinstance(item, Junk):
                self.junk_bytes += item.size
                log.warning("mllp_unframed_bytes", peer=self.peer, bytes=item.size)

    def _receive(self, payload: bytes) -> None:
        self.received += 1
        prepared = self.server.intake.prepare(payload, self.peer)
        self._journal(prepared)

    def _journal(self, prepared: Prepared) -> None:
        self.outstanding += 1
        if self.outstanding >= MAX_OUTSTANDING and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        fut = self.server.committer.submit(prepared.row)
        if self.server.config.ack_after == "processing":  # every answer in the chain: in order
            fut.add_done_callback(lambda f: self._answer_later(prepared, f.result()))
        else:
            fut.add_done_callback(lambda f: self._answer(prepared, f.result()))

    def _answer_later(self, prepared: Prepared, result: Result) -> None:
        """Answer once the pipeline is done with the message, in the order received."""
        previous = self._last_answer
        self._last_answer = asyncio.ensure_future(
            self._after_processing(previous, prepared, result)
        )

    async def _after_processing(
        self, previous: asyncio.Future[None] | None, prepared: Prepared, result: Result
    ) -> None:
        processed = None
        # Enhanced mode: the commit ACK (CA) answers at once, behind the earlier answers only.
        if (
            not prepared.enhanced
            and not isinstance(result, EngineError)
            and result.ack_code == "AA"
        ):
            timeout = self.server.config.ack_timeout_seconds
            processed = await self.server.committer.outcome(result.id, timeout)
        if previous is not None:
            await previous
        self._answer(prepared, result, processed)

    def _answer(
        self, prepared: Prepared, result: Result, processed: EndState | None = None
    ) -> None:
        self.outstanding -= 1
        try:
            if isinstance(result, EngineError):
                ack = self.server.intake.ack(prepared, None, result)
            else:
                ack = self.server.intake.ack(prepared, result, None, processed)
                log_outcome(self.server.intake.channel, prepared, result.id, result.duplicate)
            framed = frame(ack) if ack is not None else None
        except Exception as exc:  # never leave a sender waiting in silence
            log.error("mllp_ack_failed", peer=self.peer, error=type(exc).__name__)
            self.close("ack_failed")
            return
        if self.transport is not None and not self.transport.is_closing():
            if framed is not None:
                self.transport.write(framed)
            if (
                self._paused
                and not self._closing_after_nak
                and self.outstanding < MAX_OUTSTANDING // 2
            ):
                self._paused = False
                self.transport.resume_reading()
        if self._closing_after_nak and self.outstanding == 0:
            # Reading stopped at the oversized frame, so its NAK is the last answer due.
            self.close("message_too_large")

    def _reject_oversized(self, exc: FrameTooLarge) -> None:
        """Journal the head of the frame as a dead letter, NAK it, and close the connection."""
        prepared = self.server.intake.prepare_rejected(exc.head, self.peer, exc)
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._closing_after_nak = True
        self._journal(prepared)

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(
            self.server.config.idle_timeout_seconds, self.close, "idle_timeout"
        )

    def close(self, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        log.info("mllp_closing", peer=self.peer, reason=reason, received=self.received)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self.server.connections.discard(self)
        if self.decoder.in_frame:
            log.warning("mllp_incomplete_frame_dropped", peer=self.peer)
        log.info(
            "mllp_disconnected",
            peer=self.peer,
            received=self.received,
            unframed_bytes=self.junk_bytes,
        )
