"""A channel's pipeline: parse, validate, filter, route, deliver.

``process`` runs one journaled message inside the caller's transaction and returns its end
state, or raises an :class:`engine.errors.EngineError` naming the stage that failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from engine.adapters.base import Delivery, Destination, Payload
from engine.cda.standalone import CdaPayload
from engine.channels.conditions import type_matches
from engine.channels.models import ChannelConfig, FilterStep, Route, ValidateStep
from engine.errors import (
    EngineError,
    IdentityError,
    StoreUnavailable,
    TransformError,
    UnsupportedMessageType,
    ValidationError,
)
from engine.hl7v2.reader import Message
from engine.journal.models import State
from engine.journal.records import Pending, journaled_payload
from engine.transforms.map_documents import carries_documents
from engine.transforms.validate import validate_structure
from engine.transforms.zam import build_zam

log = structlog.get_logger("engine.pipeline")


class StageError(Exception):
    """An engine error together with the pipeline stage where it happened."""

    def __init__(self, stage: str, error: EngineError) -> None:
        super().__init__(f"{stage}: {error.reason}")
        self.stage = stage
        self.error = error


@dataclass(frozen=True, slots=True)
class Outcome:
    state: State
    reason: str = ""


class Pipeline:
    def __init__(self, config: ChannelConfig, destinations: dict[str, Destination]) -> None:
        self.config = config
        self.name = config.name
        self.steps = config.steps
        self.routes: tuple[Route, ...] = config.effective_routes()
        self.destinations = destinations

    def close(self) -> None:
        for destination in self.destinations.values():
            destination.close()

    def process(self, conn: Connection, pending: Pending, now: datetime) -> Outcome:
        with stage("parse"):
            msg = journaled_payload(pending.raw, pending.charset)
        kind = f"{msg.message_type}^{msg.trigger}"
        if not type_matches(kind, self.config.accept):  # a replayed intake dead letter
            raise StageError(
                "accept", UnsupportedMessageType(f"channel {self.name!r} does not accept {kind}")
            )
        for step in self.steps:
            if isinstance(step, ValidateStep):
                with stage("validate"):
                    validate_structure(_hl7_text(msg), step.profile)
            elif isinstance(step, FilterStep) and not _keeps(step, msg):
                return Outcome(State.FILTERED, "filter step")
        targets = self._targets(msg)
        if not targets:
            return Outcome(State.FILTERED, "no route matched")
        try:
            self._deliver(conn, pending, msg, targets, now)
        except StageError as exc:
            if not exc.error.transient and not _waits(exc.error):
                self._business_ack(conn, pending, msg, exc.error, now)
            raise
        self._business_ack(conn, pending, msg, None, now)
        return Outcome(State.DELIVERED)

    def _business_ack(
        self,
        conn: Connection,
        pending: Pending,
        msg: Payload,
        error: EngineError | None,
        now: datetime,
    ) -> None:
        """Send the ZAM^Z01 for a message carrying documents, where the channel asks for it.
        Best effort: a failure is logged, and the message's own outcome stands."""
        ack = self.config.business_ack
        if ack is None or not isinstance(msg, Message) or not _carries_documents(msg):
            return
        zam = build_zam(msg, error, now, ack.application)
        for name in ack.send_to:
            delivery = Delivery(
                conn, pending.id, self.name, Message(zam), zam.encode(), now, "business_ack"
            )
            try:
                self.destinations[name].write(delivery)
            except EngineError as exc:
                log.warning(
                    "business_ack_not_sent",
                    message_id=pending.id,
                    destination=name,
                    code=exc.code,
                    reason=exc.reason,
                )
            else:
                log.info(
                    "business_ack_sent",
                    message_id=pending.id,
                    destination=name,
                    answer="N" if error is not None else "Y",
                )

    def _deliver(
        self, conn: Connection, pending: Pending, msg: Payload, targets: list[str], now: datetime
    ) -> None:
        """Write to each target not yet delivered. On failure, remember only the deliveries the
        attempt's rollback does not undo, so that the retry redoes the others."""
        kept = set(pending.delivered_to)
        try:
            for name in targets:
                if name in pending.delivered_to:
                    continue  # delivered on an earlier attempt
                destination = self.destinations[name]
                with stage(f"destination:{name}"):
                    destination.write(Delivery(conn, pending.id, self.name, msg, pending.raw, now))
                pending.delivered_to.add(name)
                if not destination.transactional:
                    kept.add(name)
        except StageError:
            pending.delivered_to = kept
            raise

    def _targets(self, msg: Payload) -> list[str]:
        names: list[str] = []
        for route in self.routes:
            if route.when.test(msg):
                names.extend(n for n in route.to if n not in names)
        return names


def _carries_documents(msg: Message) -> bool:
    return msg.message_type == "MDM" or (msg.message_type == "ORU" and carries_documents(msg))


def _waits(error: EngineError) -> bool:
    """Held for its patient (902): not refused yet, so not acknowledged yet."""
    return isinstance(error, IdentityError) and error.disposition == "held"


def _hl7_text(msg: Payload) -> str:
    if isinstance(msg, CdaPayload):  # the channel loader refuses this combination
        raise ValidationError("the validate step checks HL7 v2 messages, not CDA documents")
    return msg.text


def _keeps(step: FilterStep, msg: Payload) -> bool:
    if step.keep is not None:
        return step.keep.test(msg)
    assert step.drop is not None
    return not step.drop.test(msg)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Tag errors raised in the block with the pipeline stage, and type database errors."""
    try:
        yield
    except EngineError as exc:
        raise StageError(name, exc) from exc
    except OperationalError as exc:
        unavailable = StoreUnavailable(f"database unavailable: {_first_line(exc)}")
        raise StageError(name, unavailable) from exc
    except DBAPIError as exc:
        rejected = TransformError(f"database rejected the write: {_first_line(exc)}")
        raise StageError(name, rejected) from exc


def _first_line(exc: DBAPIError) -> str:
    """The driver's message without its details: PostgreSQL's DETAIL line quotes the values
    of the row (patient data), which must not reach a reason (contract 8)."""
    return str(exc.orig).split("\n", 1)[0]
