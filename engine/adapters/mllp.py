"""MLLP source: an asyncio server that journals each message before it acknowledges it.

The connection itself is in ``mllp_connection``, who may connect in ``mllp_limits``, TLS in
``mllp_tls`` and the framing in ``mllp_framing``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from typing import TYPE_CHECKING, Literal, Self

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.adapters.mllp_connection import MllpConnection
from engine.adapters.mllp_limits import Admission
from engine.adapters.offload import OFFLOAD
from engine.hl7v2.charset import DefaultCharset
from engine.journal.duplicates import DuplicatePolicy
from engine.security.abuse import JunkLimits
from engine.security.peers import PeerNetwork
from engine.security.tls import ServerTls

if TYPE_CHECKING:  # the runtime imports this module through the channel models
    from engine.intake.committer import GroupCommitter
    from engine.intake.inbox import Intake

log = structlog.get_logger("engine.mllp")

MIB = 1024 * 1024


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
        default=300,
        gt=0,
        description="close connections that complete no frame and await no answer this long",
    )
    frame_timeout_seconds: float = Field(
        default=60, gt=0, description="a started frame must end within this (else NAK, close)"
    )
    default_charset: DefaultCharset = Field(
        default="UNICODE UTF-8", description="MSH-18 value assumed when MSH-18 is empty"
    )
    max_connections: int = Field(
        default=256, ge=1, description="past it, the connection idle longest makes room, if any"
    )
    max_connections_per_peer: int = Field(
        default=64, ge=1, description="per peer address (a quarter of max_connections)"
    )
    max_pending_ack_bytes: int = Field(
        default=MIB, ge=4096, description="stop reading from a peer leaving this much ACK unread"
    )
    max_buffered_bytes: int = Field(
        default=64 * MIB,
        ge=1024,
        description="unfinished frames of all connections; the one going past gets AE, close",
    )
    junk: JunkLimits = Field(
        default_factory=JunkLimits,
        description="refused payloads one peer address may send a minute before a backoff",
    )
    tls: ServerTls | None = Field(default=None, description="serve MLLP over TLS (1.2+)")
    tls_handshake_timeout_seconds: float = Field(default=10, gt=0)
    allowed_peers: tuple[PeerNetwork, ...] = Field(
        default=(),
        description="IP addresses or CIDR networks allowed to connect (empty: any)",
    )
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
        description=(
            "ack_after processing, and application ACKs (MSH-16): past this, answer AA (the "
            "message is kept)"
        ),
    )
    application_acks: Literal["connection", "none"] = Field(
        default="connection",
        description=(
            "MSH-15 and MSH-16 AL: after the CA, send the application ACK (AA/AE/AR) as a "
            "message of its own on the same connection, or none"
        ),
    )
    duplicates: DuplicatePolicy = Field(
        default_factory=DuplicatePolicy,
        description="how a resend is told from a control id reused for another message",
    )
    batches: Literal["accept", "refuse"] = Field(
        default="accept",
        description=(
            "HL7 v2 batches (FHS/BHS/BTS/FTS, or several messages in one frame): journal each "
            "message and answer one batch acknowledgement, or refuse them (AR)"
        ),
    )

    @model_validator(mode="after")
    def _buffer_holds_a_message(self) -> Self:
        if self.max_buffered_bytes < self.max_message_bytes:
            raise ValueError("max_buffered_bytes must hold one max_message_bytes message")
        return self

    def server(self, intake: Intake, committer: GroupCommitter) -> MllpServer:
        return MllpServer(self, intake, committer)


class MllpServer:
    """One listening socket of a channel."""

    def __init__(self, config: MllpSourceConfig, intake: Intake, committer: GroupCommitter) -> None:
        self.config = config
        self.intake = intake
        self.committer = committer
        #: Connections refused, evicted, cut off, frames refused...: for the operations API.
        self.counters: Counter[str] = Counter()
        self.admission = Admission(config, intake.channel, self.counters)
        self.offload = OFFLOAD
        #: Bytes of unfinished frames held by all connections.
        self.buffered = 0
        self.tls_context: ssl.SSLContext | None = None
        self._server: asyncio.Server | None = None

    @property
    def connections(self) -> list[MllpConnection]:
        return [c for c in self.admission.connections if isinstance(c, MllpConnection)]

    async def start(self) -> None:
        if self.config.tls is not None:
            self.tls_context = self.config.tls.context()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: MllpConnection(self), self.config.host, self.config.port, reuse_address=True
        )
        log.info(
            "mllp_listening",
            channel=self.intake.channel,
            port=self.bound_port,
            tls=self.tls_context is not None,
        )

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight messages get their ACK, then close connections."""
        if self._server is None:
            return
        # Answers may wait for the pipeline (ack_after: processing, or MSH-16 asking for an
        # application ACK): up to ack_timeout_seconds. Without such waits this ends at once.
        grace = max(grace, self.config.ack_timeout_seconds + 1)
        self._server.close()
        deadline = asyncio.get_running_loop().time() + grace
        while any(c.outstanding for c in self.connections):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        for conn in self.connections:
            conn.close("engine_stopping")
        await self._server.wait_closed()
