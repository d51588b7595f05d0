"""Typed models of the ``source`` of a channel in ``channels.yaml``: data only.

Each model is frozen and forbids unknown keys. The runtime object a model stands for is built
by :mod:`engine.adapters.registry`; these modules import nothing of the runtime.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.channels.amqp_settings import (
    AmqpConnection,
    ExchangeType,
    Topology,
    source_topology,
)
from engine.channels.answering import AnswerAfter, Answering
from engine.channels.duplicates import DuplicatePolicy
from engine.hl7v2.charset import DefaultCharset
from engine.security.abuse import JunkLimits
from engine.security.peers import PeerNetwork
from engine.security.tls import ServerTls

MIB = 1024 * 1024
#: Who may send to an HTTP source: a bearer token, a client certificate, or anyone.
Auth = Literal["token", "mtls", "none"]


class MllpSourceConfig(Answering):
    """Receive HL7 v2 messages (or, with ``payload: cda``, CDA documents) over MLLP (TCP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    DEPRECATED: ClassVar[dict[str, str]] = {
        "ack_after": "answer_after",
        "ack_timeout_seconds": "answer_timeout_seconds",
    }

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
    answer_after: AnswerAfter = Field(
        default="commit",
        description=(
            "commit: ACK once the message is journaled (fastest); processing: ACK once the "
            "pipeline is done with it, so that a refusal there (schema, CI-SIS, identity) "
            "reaches the sender as AR/AE with its reason (original acknowledgement mode)"
        ),
    )
    answer_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description=(
            "answer_after processing, and application ACKs (MSH-16): past this, answer AA (the "
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


class HttpSourceConfig(Answering):
    """Receive documents (or messages) as HTTP POST bodies."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    DEPRECATED: ClassVar[dict[str, str]] = {
        "respond_after": "answer_after",
        "respond_timeout_seconds": "answer_timeout_seconds",
    }

    type: Literal["http"]
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(ge=1, le=65535)
    path: str = Field(default="/documents", pattern=r"^/[A-Za-z0-9/_.-]*$")
    payload: Literal["cda", "hl7v2"] = Field(
        default="cda", description="what a body holds: a CDA document, or an HL7 v2 message"
    )
    max_message_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="larger bodies get 413"
    )
    default_charset: str = Field(
        default="UNICODE UTF-8", description="HL7 v2 bodies: MSH-18 assumed when it is empty"
    )
    answer_after: AnswerAfter = Field(
        default="commit",
        description=(
            "commit: answer once journaled (202); processing: once the pipeline is done with "
            "it: 200 stored, 422 refused (schema, CI-SIS, INS) with the reason, 202 waiting "
            "for its patient or for identity review"
        ),
    )
    answer_timeout_seconds: float = Field(
        default=10, gt=0, description="answer_after processing: past this, 202 (kept)"
    )
    auth: Auth = Field(
        default="token",
        description=(
            "token: a bearer token from 'aiguillage senders add' (the default); mtls: a client "
            "certificate (tls.client_ca_file); none: anyone who reaches the port"
        ),
    )
    tls: ServerTls | None = Field(default=None, description="serve HTTPS (TLS 1.2 or later)")
    allowed_peers: tuple[PeerNetwork, ...] = Field(
        default=(), description="IP addresses or CIDR networks allowed to connect (empty: any)"
    )
    junk: JunkLimits = Field(
        default_factory=JunkLimits, description="refused payloads journaled per peer, then 429"
    )
    max_connections: int = Field(
        default=256, ge=1, description="open connections; at the cap an idle one is closed"
    )
    max_connections_per_peer: int = Field(default=32, ge=1)
    header_timeout_seconds: float = Field(
        default=10, gt=0, description="TLS handshake and request headers must arrive in time"
    )
    body_timeout_seconds: float = Field(
        default=60, gt=0, description="the whole body must arrive in time, else 408"
    )
    keepalive_timeout_seconds: float = Field(
        default=5, gt=0, description="an idle connection between requests is closed after it"
    )

    @model_validator(mode="after")
    def _mtls_needs_client_certificates(self) -> Self:
        if self.auth == "mtls" and (self.tls is None or self.tls.client_ca_file is None):
            raise ValueError("auth: mtls needs tls.client_ca_file (client certificates)")
        return self


class DirectorySourceConfig(BaseModel):
    """Poll a directory for files, one document (or message) per file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["directory"]
    path: Path = Field(description="the watched directory (created if missing)")
    pattern: str = Field(
        default="*.xml", description="glob of the names of the files to take (no '/')"
    )
    payload: Literal["cda", "hl7v2"] = Field(
        default="cda", description="what a file holds: a CDA document, or an HL7 v2 message"
    )
    poll_seconds: float = Field(default=2.0, gt=0)
    settle_seconds: float = Field(
        default=1.0, ge=0, description="a file must be unchanged this long before it is taken"
    )
    after: Literal["move", "delete"] = Field(
        default="move", description="move taken files to processed/ or error/, or delete them"
    )
    max_message_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    default_charset: DefaultCharset = Field(
        default="UNICODE UTF-8", description="HL7 v2 files: MSH-18 assumed when it is empty"
    )
    batches: Literal["accept", "refuse"] = Field(
        default="accept",
        description=(
            "HL7 v2 files holding a batch (FHS/BHS, or several messages): journal each "
            "message, or refuse the file"
        ),
    )

    @field_validator("pattern")
    @classmethod
    def _names_only(cls, pattern: str) -> str:
        # Files are taken from the directory itself, never from below it (or through a link).
        if "/" in pattern or os.sep in pattern:
            raise ValueError("the pattern matches file names in the directory: no '/'")
        return pattern


class AmqpSourceConfig(BaseModel):
    """Consume messages (HL7 v2, or CDA documents with ``payload: cda``) from a RabbitMQ
    queue, which the engine declares with its dead-letter queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["amqp"]
    broker: AmqpConnection = Field(default_factory=AmqpConnection)
    queue: str = Field(min_length=1, max_length=200)
    exchange: str = Field(default="", description="declared and bound to the queue if given")
    exchange_type: ExchangeType = "direct"
    routing_key: str = Field(default="", description="binding key; default: the queue name")
    queue_type: Literal["quorum", "classic"] = "quorum"
    delivery_limit: int = Field(
        default=5, ge=1, description="deliveries before the broker dead-letters (quorum only)"
    )
    prefetch: int = Field(default=100, ge=1, le=65535, description="unacknowledged at once")
    payload: Literal["hl7v2", "cda"] = "hl7v2"
    default_charset: DefaultCharset = Field(
        default="UNICODE UTF-8", description="when MSH-18 is empty"
    )
    reconnect_initial_seconds: float = Field(default=1.0, gt=0)
    reconnect_max_seconds: float = Field(default=30.0, gt=0)

    def topology(self) -> Topology:
        return source_topology(
            self.queue,
            self.queue_type,
            self.delivery_limit,
            self.exchange,
            self.exchange_type,
            self.routing_key,
        )


SourceConfig = Annotated[
    MllpSourceConfig | HttpSourceConfig | DirectorySourceConfig | AmqpSourceConfig,
    Field(discriminator="type"),
]

_BY_TYPE: dict[str, type[Answering]] = {"mllp": MllpSourceConfig, "http": HttpSourceConfig}


def deprecated_keys(data: object) -> list[tuple[tuple[str | int, ...], str]]:
    """Where a ``channels.yaml`` document (as parsed) uses an old key name, with its name now:
    ``(("channels", 0, "source", "ack_after"), "answer_after")``."""
    channels = data.get("channels") if isinstance(data, dict) else None
    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, channel in enumerate(channels if isinstance(channels, list) else []):
        source = channel.get("source") if isinstance(channel, dict) else None
        if not isinstance(source, dict):
            continue
        model = _BY_TYPE.get(str(source.get("type")))
        renamed = model.DEPRECATED if model is not None else {}
        found += [(("channels", i, "source", k), renamed[k]) for k in source if k in renamed]
    return found
