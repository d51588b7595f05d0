"""The CI-SIS business acknowledgement (ZAM^Z01) of a channel that asks for one: ``Y`` once a
message carrying documents is delivered, ``N`` once it is dead-lettered (whatever the stage,
retries exhausted included). Nothing while it waits for its patient (902) or for an identity
review (903-905): a review settled by attaching the patient ends in ``Y``.

It goes to the outbox in the end state's transaction and is sent after the commit through the
channel's named destinations (an MLLP peer, a file), retried with backoff until one takes it
(:mod:`engine.pipeline.outbox_sender`); it never changes the message's outcome. Its MSH-10 is
derived from the journal id, so that a receiver can tell a ZAM sent twice.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import Connection

from engine.channels.config import BusinessAck
from engine.errors import EngineError
from engine.hl7v2.embedded_documents import is_document_message
from engine.hl7v2.reader import Message
from engine.journal import outbox
from engine.journal.records import Pending
from engine.pipeline.delivery import Destination, Payload
from engine.pipeline.payloads import is_xml, journaled_message
from engine.transforms.zam import build_zam

log = structlog.get_logger("engine.pipeline")
KIND = "business_ack"


class BusinessAcks:
    def __init__(
        self, channel: str, config: BusinessAck, destinations: dict[str, Destination]
    ) -> None:
        self.channel = channel
        self.config = config
        self.destinations = destinations

    def delivered(self, conn: Connection, pending: Pending, msg: Payload, now: datetime) -> None:
        self._send(conn, pending, msg, None, now)

    def dead_lettered(
        self, conn: Connection, pending: Pending, error: EngineError, now: datetime
    ) -> None:
        if is_xml(pending.raw, pending.charset):
            return  # a document received alone has no ZAM (and is not parsed again for it)
        try:
            msg = journaled_message(pending.raw, pending.charset)
        except EngineError:
            return  # not readable: intake refused it, and said so in its ACK
        self._send(conn, pending, msg, error, now)

    def _send(
        self,
        conn: Connection,
        pending: Pending,
        msg: Payload,
        error: EngineError | None,
        now: datetime,
    ) -> None:
        if not isinstance(msg, Message) or not is_document_message(msg):
            return
        zam = build_zam(msg, error, now, self.config.application, f"ZAM{pending.id}")
        outbox.add(conn, pending.id, self.channel, self.config.send_to, KIND, zam.encode(), now)
        log.info("business_ack_queued", message_id=pending.id, answer="N" if error else "Y")
