"""AMQP source (RabbitMQ, pika's asyncio adapter on the engine's event loop).

Each delivery goes through the channel's inbox: checked on the event loop
(:meth:`Inbox.check_or_raise`), its transport metadata added, then journaled
(:meth:`Inbox.journal`); it is acknowledged to the broker only once the journal committed it
(contract 1). A message intake refuses is journaled as a dead letter and acknowledged too: it
is never redelivered forever. When the journal cannot store, the delivery stays unacknowledged
and its commit is retried with backoff (a requeue would count against the delivery limit). A
redelivery after a crash between commit and acknowledgement is a resend the journal recognises
(contract 3).

A message whose handling crashes, its check included (unlike the other sources, where such a
failure refuses the payload at once), is requeued (``nack``): a passing fault costs a
redelivery, not a dead letter. After the queue's ``delivery-limit`` the broker moves it to
``<queue>.dead``, which this source also consumes: such a message enters the journal as a dead
letter (``poison_message``, :meth:`Inbox.check_poisoned`), original bytes kept.

Without a broker the channel logs ``amqp_waiting_for_broker`` and retries with backoff; the
rest of the engine runs. Connection loss and consumer cancellation start the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import structlog
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from engine.adapters.amqp_session import BrokerError, BrokerSession
from engine.channels.sources import AmqpSourceConfig
from engine.errors import PoisonMessage
from engine.intake.inbox import Answer, Inbox
from engine.intake.prepared import Prepared
from engine.logs import error_fields

log = structlog.get_logger("engine.amqp")
#: A session up this long resets the reconnection backoff (one failing at once does not).
STABLE_SECONDS = 10.0


class AmqpSource:
    def __init__(self, config: AmqpSourceConfig, inbox: Inbox):
        self.config = config
        self.inbox = inbox
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: Session | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._session is not None:
            await self._session.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = self.config.reconnect_initial_seconds
        where = self.config.broker.safe_url()
        while not self._stopping:
            session = Session(self)
            self._session = session
            opened_at = 0.0
            try:
                await session.open()
                log.info(
                    "amqp_consuming",
                    channel=self.inbox.channel,
                    broker=where,
                    queue=self.config.queue,
                )
                self.connected.set()
                opened_at = time.monotonic()
                reason = await session.closed
            except BrokerError as exc:
                reason = exc.reason
            except Exception as exc:  # never stop the channel for good: log, back off, retry
                log.error("amqp_session_failed", channel=self.inbox.channel, **error_fields(exc))
                reason = type(exc).__name__
            finally:
                self.connected.clear()
            if opened_at and time.monotonic() - opened_at > STABLE_SECONDS:
                delay = self.config.reconnect_initial_seconds  # it had been up a while
            if self._stopping:
                return
            log.warning(
                "amqp_waiting_for_broker",
                channel=self.inbox.channel,
                broker=where,
                reason=reason,
                retry_in=delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.reconnect_max_seconds)


class Session(BrokerSession):
    """One connection of the source: its deliveries go through the channel's inbox."""

    def __init__(self, source: AmqpSource) -> None:
        super().__init__(source.config, source.inbox.channel)
        self.source = source
        self._journaling: set[asyncio.Task[Answer]] = set()

    # -- deliveries -------------------------------------------------------------------------

    def on_message(
        self, channel: Channel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        try:  # a crash while checking escapes check_or_raise: requeued (see _crashed)
            prepared = self.source.inbox.check_or_raise(body, self._peer(method))
            self._journal(channel, method, props, prepared)
        except Exception as exc:  # a bug: requeue, the delivery limit dead-letters it
            self._crashed(channel, method, exc)

    def on_dead(
        self, channel: Channel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        """A message the broker dead-lettered after its delivery limit: an engine dead letter."""
        try:
            count, why = _death(props)
            error = PoisonMessage(
                f"dead-lettered by the broker from {self.config.queue!r} after {count} failed "
                f"deliveries ({why})"
            )
            prepared = self.source.inbox.check_poisoned(body, self._peer(method), error)
            self._journal(channel, method, props, prepared)
        except Exception as exc:
            self._crashed(channel, method, exc)

    def _crashed(self, channel: Channel, method: Basic.Deliver, exc: Exception) -> None:
        """Never let an exception out of a pika callback: it would abort the connection and
        return every unacknowledged delivery, each counting against its delivery limit."""
        log.error(
            "amqp_message_crashed",
            channel=self.source.inbox.channel,
            redelivered=bool(method.redelivered),
            **error_fields(exc),
        )
        if channel.is_open:
            channel.basic_nack(method.delivery_tag, requeue=True)

    def _peer(self, method: Basic.Deliver) -> str:
        return f"amqp:{method.exchange or '-'}/{method.routing_key}"[:128]

    def _journal(
        self,
        channel: Channel,
        method: Basic.Deliver,
        props: BasicProperties,
        prepared: Prepared,
        delay: float = 0.0,
    ) -> None:
        prepared.row.properties = properties_json(method, props)
        task = asyncio.ensure_future(self.source.inbox.journal(prepared))
        self._journaling.add(task)
        task.add_done_callback(lambda t: self._settle(channel, method, props, prepared, t, delay))

    def _settle(
        self,
        channel: Channel,
        method: Basic.Deliver,
        props: BasicProperties,
        prepared: Prepared,
        task: asyncio.Task[Answer],
        delay: float,
    ) -> None:
        self._journaling.discard(task)
        if not channel.is_open or task.cancelled():
            return  # the broker redelivers it: the journal recognises the resend
        if (exc := task.exception()) is not None:
            self._crashed(channel, method, exc if isinstance(exc, Exception) else RuntimeError())
            return
        answer = task.result()
        if answer.status == "unavailable":  # the journal could not store: keep it, retry
            wait = min(max(delay * 2, 0.5), 30.0)
            log.warning(
                "amqp_journal_retry",
                channel=self.source.inbox.channel,
                code=answer.code,
                retry_in=wait,
            )
            self.loop.call_later(wait, self._journal, channel, method, props, prepared, wait)
            return
        channel.basic_ack(method.delivery_tag)


def _death(props: BasicProperties) -> tuple[object, str]:
    """How many deliveries failed, and why, from the broker's ``x-death`` header (read
    defensively: anyone may publish to the dead-letter queue)."""
    deaths = (props.headers or {}).get("x-death")
    first = deaths[0] if isinstance(deaths, list) and deaths else None
    if not isinstance(first, dict):
        return "?", "delivery limit"
    return first.get("count", "?"), str(first.get("reason", "delivery limit"))[:40]


def properties_json(method: Basic.Deliver, props: BasicProperties) -> str:
    """What the journal keeps of a delivery's transport metadata."""
    kept: dict[str, Any] = {
        "exchange": method.exchange,
        "routing_key": method.routing_key,
        "redelivered": bool(method.redelivered),
    }
    for name in ("message_id", "correlation_id", "content_type", "type", "app_id", "timestamp"):
        value = getattr(props, name, None)
        if value is not None:
            kept[name] = value
    if props.headers:
        kept["headers"] = props.headers
    return json.dumps(kept, default=str, ensure_ascii=False)
