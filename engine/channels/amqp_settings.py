"""RabbitMQ connection settings and the topology a channel needs, shared by the AMQP source,
the AMQP destination and ``aiguillage check``.

A source queue is a quorum queue by default, with a ``delivery-limit``: a message that fails
that many deliveries (it crashes every consumer that takes it) goes to the queue's dead-letter
exchange ``<queue>.dead`` and its queue ``<queue>.dead``, which the engine consumes into its
own dead letters. Credentials come from the URL (in the config, or in the environment variable
``url_env`` names, which wins) and are never logged: :func:`safe_url` is what logs show.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import pika
import pika.exceptions
from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class AmqpTls(BaseModel):
    """TLS to the broker (``amqps://`` URLs): CA bundle, and a client certificate if asked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: str | None = Field(default=None, description="CA bundle; default: the system's")
    cert_file: str | None = Field(default=None, description="client certificate (PEM)")
    key_file: str | None = Field(default=None, description="its private key (PEM)")
    server_hostname: str | None = Field(default=None, description="default: the URL's host")


class AmqpConnection(BaseModel):
    """Where the broker is. Shared by sources and destinations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        default=DEFAULT_URL,
        description="amqp[s]://user:password@host:port/vhost; url_env, when set, wins",
    )
    url_env: str = Field(
        default="AIGUILLAGE_AMQP_URL",
        description="environment variable holding the URL (keeps credentials out of the file)",
    )
    tls: AmqpTls | None = None
    heartbeat_seconds: int = Field(default=30, ge=0)

    @field_validator("url")
    @classmethod
    def _readable(cls, url: str) -> str:
        """Refuse a URL pika could not read, without quoting it (it holds a password)."""
        if not _readable_url(url):
            raise ValueError(
                "the broker URL cannot be read: amqp[s]://user:password@host:port/vhost, with "
                "'/', '#', '?' and '@' in the user or password %-encoded"
            )
        return url

    def effective_url(self) -> str:
        return os.environ.get(self.url_env) or self.url

    def parameters(self) -> pika.URLParameters:
        params = pika.URLParameters(self.effective_url())
        params.heartbeat = self.heartbeat_seconds
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.blocked_connection_timeout = 30
        if self.tls is not None:
            context = ssl.create_default_context(cafile=self.tls.ca_file)
            if self.tls.cert_file:
                context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
            host = self.tls.server_hostname or urlsplit(self.effective_url()).hostname
            params.ssl_options = pika.SSLOptions(context, host)
        return params

    def safe_url(self) -> str:
        """The URL without its credentials, for logs and error reasons (never raises)."""
        url = self.effective_url()
        if not _readable_url(url):
            return f"(an unreadable broker URL, from {self.url_env} or the config)"
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path or '/'}"


def _readable_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a password that swallowed the host
    except ValueError:
        return False
    return parts.scheme in ("amqp", "amqps") and bool(parts.hostname)


ExchangeType = Literal["direct", "topic", "fanout", "headers"]


@dataclass(frozen=True, slots=True)
class Exchange:
    name: str
    type: ExchangeType


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Binding:
    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class Topology:
    """What to declare, in order: exchanges, then queues, then bindings (all durable)."""

    exchanges: tuple[Exchange, ...] = ()
    queues: tuple[Queue, ...] = ()
    bindings: tuple[Binding, ...] = ()


def dead_letter_name(queue: str) -> str:
    """The dead-letter exchange and queue of a source queue."""
    return f"{queue}.dead"


def source_topology(
    queue: str,
    queue_type: Literal["quorum", "classic"],
    delivery_limit: int,
    exchange: str = "",
    exchange_type: ExchangeType = "direct",
    routing_key: str = "",
) -> Topology:
    """A source queue, its dead-letter exchange and queue, and its binding if it has an
    exchange. Classic queues have no delivery limit (RabbitMQ counts deliveries of quorum
    queues only): a poison message then stays until an operator removes it."""
    dead = dead_letter_name(queue)
    args: dict[str, Any] = {"x-queue-type": queue_type, "x-dead-letter-exchange": dead}
    if queue_type == "quorum":
        args["x-delivery-limit"] = delivery_limit
    exchanges = [Exchange(dead, "fanout")]
    bindings = [Binding(dead, dead, "")]
    if exchange:
        exchanges.insert(0, Exchange(exchange, exchange_type))
        bindings.insert(0, Binding(queue, exchange, routing_key or queue))
    queues = (Queue(queue, args), Queue(dead, {"x-queue-type": queue_type}))
    return Topology(tuple(exchanges), queues, tuple(bindings))


def close_quietly(connection: pika.BlockingConnection | None) -> None:
    """Close a blocking connection if it is open; a broker already gone is no error."""
    if connection is not None and connection.is_open:
        with contextlib.suppress(pika.exceptions.AMQPError):
            connection.close()
