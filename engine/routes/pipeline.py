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
    StoreUnavailable,
    TransformError,
    UnsupportedMessageType,
    ValidationError,
)
from engine.journal.models import State
from engine.journal.queries import sender_of
from engine.journal.records import Pending, journaled_payload
from engine.routes.business_ack import BusinessAcks
from engine.transforms.validate import validate_structure

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
        ack = config.business_ack
        self.business_acks = BusinessAcks(self.name, ack, destinations) if ack is not None else None

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
        self._deliver(conn, pending, msg, targets, now)
        if self.business_acks is not None:
            self.business_acks.delivered(conn, pending, msg, now)
        return Outcome(State.DELIVERED)

    def dead_lettered(
        self, conn: Connection, pending: Pending, error: EngineError, now: datetime
    ) -> None:
        """Told by the worker once a message is dead-lettered (its business acknowledgement)."""
        if self.business_acks is not None:
            self.business_acks.dead_lettered(conn, pending, error, now)

    def _deliver(
        self, conn: Connection, pending: Pending, msg: Payload, targets: list[str], now: datetime
    ) -> None:
        """Write to each target not yet delivered. On failure, remember only the deliveries the
        attempt's rollback does not undo, so that the retry redoes the others."""
        kept = set(pending.delivered_to)
        with stage("deliver"):  # the journal row's sender: a replay keeps the original one
            sender = sender_of(conn, pending.id)
        try:
            for name in targets:
                if name in pending.delivered_to:
                    continue  # delivered on an earlier attempt
                destination = self.destinations[name]
                delivery = Delivery(
                    conn, pending.id, self.name, msg, pending.raw, now, sender=sender
                )
                with stage(f"destination:{name}"):
                    destination.write(delivery)
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
