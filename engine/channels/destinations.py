"""Typed models of the ``destinations`` of a channel in ``channels.yaml``: data only.

Each model is frozen and forbids unknown keys. The runtime object a model stands for is built
by :mod:`engine.adapters.registry`; these modules import nothing of the runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.channels.amqp_settings import AmqpConnection, ExchangeType
from engine.security.tls import ClientTls


class DocumentChecks(BaseModel):
    """How CDA documents are checked before they are stored (each failure is a dead letter
    whose reason names the line and the rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    xsd: Literal["none", "cda", "cisis"] = Field(
        default="none",
        description="XSD validation: the normative CDA R2 schema, or the French extended one",
    )
    cisis_header: bool = Field(
        default=False,
        description="CI-SIS header rules (templateIds, ids, version, code, author, INS...)",
    )


class RecordStoreConfig(BaseModel):
    """Apply ADT and ORU^R01 messages to the shared record store (same database as the journal)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["record_store"]
    require_ins: bool = Field(
        default=False,
        description="a message without a usable INS goes to identity review (error 903)",
    )
    documents: DocumentChecks = Field(default_factory=DocumentChecks)


class FileDestinationConfig(BaseModel):
    """Write each message to ``<directory>/<channel>/<message id>.hl7`` (``.xml`` for a CDA
    document received alone, ``.zam.hl7`` for its business acknowledgement), atomically and
    fsynced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["file"]
    directory: Path = Field(description="created if missing")


class MllpDestinationConfig(BaseModel):
    """Send messages to an MLLP peer (one connection per message)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["mllp"]
    host: str
    port: int = Field(ge=1, le=65535)
    timeout_seconds: float = Field(default=5.0, gt=0, description="connect, send, and ACK wait")
    tls: ClientTls | None = Field(
        default=None, description="TLS toward the peer: its CA, and a client certificate (mTLS)"
    )


class AmqpDestinationConfig(BaseModel):
    """Publish messages to a RabbitMQ exchange (confirmed, persistent, mandatory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["amqp"]
    broker: AmqpConnection = Field(default_factory=AmqpConnection)
    exchange: str = Field(default="", description='"" is the default exchange (key = queue)')
    exchange_type: ExchangeType = "direct"
    declare_exchange: bool = Field(default=True, description="declare it (durable) first")
    routing_key: str = ""


class HttpDestinationConfig(BaseModel):
    """POST each message to ``url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://[^\s]+$", description="http:// or https:// URL")
    timeout_seconds: float = Field(
        default=10.0, gt=0, description="connect, send, and wait for each read of the answer"
    )
    content_type: str | None = Field(
        default=None,
        description='default: "application/hl7-v2; charset=<the message\'s>", '
        '"application/xml" for a CDA document',
    )
    bearer_token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="environment variable holding the bearer token (Authorization: Bearer)",
    )
    tls: ClientTls | None = Field(
        default=None, description="https: the server's CA, and a client certificate (mTLS)"
    )


class MemoryDestinationConfig(BaseModel):
    """Keep each message in this process's memory box ``box`` (tests and dry runs only: what
    it holds is gone when the process ends)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["memory"]
    box: str = Field(min_length=1, description="the name tests read it back by")


AnyDestination = (
    RecordStoreConfig
    | FileDestinationConfig
    | MllpDestinationConfig
    | AmqpDestinationConfig
    | HttpDestinationConfig
    | MemoryDestinationConfig
)
DestinationConfig = Annotated[AnyDestination, Field(discriminator="type")]
