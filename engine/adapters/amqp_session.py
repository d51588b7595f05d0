"""A pika asyncio session with RabbitMQ: connection, channel, topology, consumers; the broker's
callbacks turned into awaitable steps, and every broker failure into :class:`BrokerError`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

import structlog
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from engine.channels.amqp_settings import Binding, Exchange, Queue, Topology, dead_letter_name
from engine.channels.sources import AmqpSourceConfig

log = structlog.get_logger("engine.amqp")


class BrokerError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BrokerSession:
    """One connection and channel: open, declare, consume (``on_message`` for the queue,
    ``on_dead`` for its dead-letter queue), until the broker or we close it."""

    def __init__(self, config: AmqpSourceConfig, name: str) -> None:
        self.config = config
        self.name = name
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.closed: asyncio.Future[str] = loop.create_future()
        self.connection: AsyncioConnection | None = None
        self.channel: Channel | None = None
        self._pending: asyncio.Future[Any] | None = None

    async def open(self) -> None:
        opened: asyncio.Future[None] = self.loop.create_future()

        def on_open(_: Any) -> None:
            _resolve(opened, None)

        def on_open_error(_: Any, exc: BaseException) -> None:
            _fail(opened, BrokerError(_describe(exc)))

        def on_close(_: Any, exc: BaseException) -> None:
            reason = _describe(exc)
            _fail(opened, BrokerError(reason))
            if self._pending is not None:
                _fail(self._pending, BrokerError(reason))
            _resolve(self.closed, reason)

        try:
            params = self.config.broker.parameters()
        except (ValueError, OSError) as exc:  # unreadable TLS files (never quote the URL)
            raise BrokerError(f"broker settings: {type(exc).__name__}") from exc
        self.connection = AsyncioConnection(
            params, on_open, on_open_error, on_close, custom_ioloop=self.loop
        )
        await opened
        self.channel = await self.call(lambda cb: self.connection.channel(on_open_callback=cb))  # type: ignore[union-attr]
        channel = self.channel
        channel.add_on_close_callback(self._channel_closed)
        channel.add_on_cancel_callback(self._cancelled)
        await declare(self, self.config.topology())
        await self.call(
            lambda cb: channel.basic_qos(prefetch_count=self.config.prefetch, callback=cb)
        )
        channel.basic_consume(self.config.queue, self.on_message)
        channel.basic_consume(dead_letter_name(self.config.queue), self.on_dead)

    async def call(self, start: Callable[[Callable[..., None]], Any]) -> Any:
        """Run a pika call whose completion comes through a callback."""
        if self.closed.done():  # closed between two steps: pika would raise synchronously
            raise BrokerError(self.closed.result())
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._pending = fut
        try:
            start(lambda result=None: _resolve(fut, result))
        except Exception as exc:  # the channel or the connection is closing
            self._pending = None
            raise BrokerError(_describe(exc)) from exc
        try:
            return await fut
        finally:
            self._pending = None

    def _channel_closed(self, _: Channel, exc: BaseException) -> None:
        reason = _describe(exc)
        if self._pending is not None:
            _fail(self._pending, BrokerError(reason))
        self._close_connection()
        _resolve(self.closed, reason)

    def _cancelled(self, _: Any) -> None:
        log.warning("amqp_consumer_cancelled", channel=self.name, queue=self.config.queue)
        self._close_connection()

    def _close_connection(self) -> None:
        if self.connection is not None and not (
            self.connection.is_closed or self.connection.is_closing
        ):
            self.connection.close()

    async def close(self) -> None:
        self._close_connection()
        if self.connection is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), 5)

    def on_message(
        self, channel: Channel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        raise NotImplementedError

    def on_dead(
        self, channel: Channel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        raise NotImplementedError


async def declare(session: BrokerSession, topology: Topology) -> None:
    """Declare the exchanges, queues and bindings (durable); a conflict with what the broker
    has closes the channel with its reason (e.g. ``PRECONDITION_FAILED - inequivalent arg``)."""
    channel = session.channel
    assert channel is not None
    for ex in topology.exchanges:
        await session.call(partial(_exchange, channel, ex))
    for q in topology.queues:
        await session.call(partial(_queue, channel, q))
    for b in topology.bindings:
        await session.call(partial(_bind, channel, b))


def _exchange(channel: Channel, ex: Exchange, callback: Callable[..., None]) -> None:
    channel.exchange_declare(ex.name, ex.type, durable=True, callback=callback)


def _queue(channel: Channel, q: Queue, callback: Callable[..., None]) -> None:
    channel.queue_declare(q.name, durable=True, arguments=q.arguments, callback=callback)


def _bind(channel: Channel, b: Binding, callback: Callable[..., None]) -> None:
    channel.queue_bind(b.queue, b.exchange, b.routing_key, callback=callback)


def _describe(exc: BaseException) -> str:
    """A broker error without credentials (pika's messages name host and port at most)."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
