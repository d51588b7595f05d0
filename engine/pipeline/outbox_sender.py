"""Sends the outbox's due rows through their channel's destinations, after the commits that
wrote them (see :mod:`engine.journal.outbox`). The database is not held during a send."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from engine.errors import EngineError
from engine.hl7v2.reader import Message
from engine.journal import outbox
from engine.journal.journal import utcnow
from engine.pipeline.delivery import Delivery
from engine.pipeline.pipeline import Pipeline

log = structlog.get_logger("engine.outbox")


class OutboxSender:
    def __init__(
        self,
        engine: Engine,
        pipelines: dict[str, Pipeline],
        write_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.engine = engine
        #: Only the channels that write to the outbox (a business acknowledgement).
        self.pipelines = {n: p for n, p in pipelines.items() if p.business_acks is not None}
        self.write_lock = write_lock or nullcontext()

    def flush(self) -> int:
        """Send what is due; returns how many rows were sent."""
        if not self.pipelines:
            return 0
        try:
            with self.write_lock, self.engine.begin() as conn:
                rows = outbox.lease(conn, utcnow(), self.pipelines)
            results = [(row, self._send(row)) for row in rows]
            with self.write_lock, self.engine.begin() as conn:
                now = utcnow()
                for row, error in results:
                    if error is None:
                        outbox.sent(conn, row, now)
                    else:
                        outbox.failed(conn, row, error, now)
        except SQLAlchemyError as exc:  # leased rows come back when their lease ends
            log.error("outbox_database_error", error=type(exc).__name__)
            return 0
        return sum(error is None for _, error in results)

    def _send(self, row: outbox.OutboxRow) -> str | None:
        """None when the destination took it, else the reason."""
        pipeline = self.pipelines[row.channel]
        destination = pipeline.destinations.get(row.destination)
        if destination is None:
            return f"destination {row.destination!r} is no longer in the channel"
        if row.kind != "business_ack":
            return f"unknown outbox kind {row.kind!r}"
        try:
            message = Message(row.payload.decode("utf-8"))
            with self.engine.connect() as conn:  # destinations that write take their own
                delivery = Delivery(
                    conn,
                    row.message_id,
                    row.channel,
                    message,
                    row.payload,
                    utcnow(),
                    "business_ack",
                )
                destination.write(delivery)
                conn.commit()
        except EngineError as exc:
            log.warning(
                "outbox_send_failed",
                message_id=row.message_id,
                destination=row.destination,
                code=exc.code,
                attempt=row.attempts + 1,
            )
            return exc.reason
        log.info("business_ack_sent", message_id=row.message_id, destination=row.destination)
        return None
