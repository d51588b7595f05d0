"""A channel's pipeline: parse, validate, filter, transform, route, deliver.

``process`` runs one journaled message inside the caller's transaction and returns its end
state, or raises an :class:`engine.errors.EngineError` naming the stage that failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Connection

from engine.channels.config import ChannelConfig
from engine.errors import EngineError, UnsupportedMessageType
from engine.hl7v2.reader import Message
from engine.journal import transformed
from engine.journal.lookups import sender_of
from engine.journal.message_tables import State
from engine.journal.records import Pending
from engine.pipeline.business_ack import BusinessAcks
from engine.pipeline.channel_steps import ChannelSteps, encoded
from engine.pipeline.delivery import Delivery, Destination, Payload
from engine.pipeline.payloads import journaled_payload
from engine.pipeline.stages import StageError, stage
from engine.routes.conditions import type_matches

__all__ = ["Outcome", "Pipeline", "StageError", "stage"]

log = structlog.get_logger("engine.pipeline")


@dataclass(frozen=True, slots=True)
class Outcome:
    state: State
    reason: str = ""


class Pipeline:
    def __init__(self, config: ChannelConfig, destinations: dict[str, Destination]) -> None:
        self.config = config
        self.name = config.name
        self.steps = ChannelSteps(config)
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
        stepped = self.steps.run(msg)
        if stepped.filtered:
            return Outcome(State.FILTERED, stepped.filtered)
        forms = self._encoded(pending, msg, stepped.forms)
        if self.steps.transforms:  # the forms of this run replace an earlier run's (a replay)
            changed = {n: raw for n, (form, raw) in forms.items() if form is not msg}
            with stage("transform"):
                transformed.record(conn, pending.id, changed, now)
        self._deliver(conn, pending, forms, now)
        if self.business_acks is not None:
            self.business_acks.delivered(conn, pending, msg, now)
        return Outcome(State.DELIVERED)

    def dead_lettered(
        self, conn: Connection, pending: Pending, error: EngineError, now: datetime
    ) -> None:
        """Told by the worker once a message is dead-lettered (its business acknowledgement)."""
        if self.business_acks is not None:
            self.business_acks.dead_lettered(conn, pending, error, now)

    def _encoded(
        self, pending: Pending, original: Payload, forms: dict[str, Payload]
    ) -> dict[str, tuple[Payload, bytes]]:
        """Each target's message and bytes: the raw bytes unless a step changed it."""
        out: dict[str, tuple[Payload, bytes]] = {}
        done: dict[int, bytes] = {}
        for name, form in forms.items():
            if form is original or not isinstance(form, Message):
                out[name] = (form, pending.raw)
                continue
            raw = done.get(id(form))
            if raw is None:
                with stage("transform"):
                    raw = done[id(form)] = encoded(form, pending.charset)
            out[name] = (form, raw)
        return out

    def _deliver(
        self,
        conn: Connection,
        pending: Pending,
        forms: dict[str, tuple[Payload, bytes]],
        now: datetime,
    ) -> None:
        """Write to each target not yet delivered. On failure, remember only the deliveries the
        attempt's rollback does not undo, so that the retry redoes the others."""
        kept = set(pending.delivered_to)
        sender = pending.sender  # the journal row's sender: a replay keeps the original one
        if sender is None:
            with stage("deliver"):
                sender = sender_of(conn, pending.id)
        try:
            for name, (form, raw) in forms.items():
                if name in pending.delivered_to:
                    continue  # delivered on an earlier attempt
                destination = self.destinations[name]
                delivery = Delivery(conn, pending.id, self.name, form, raw, now, sender=sender)
                with stage(f"destination:{name}"):
                    destination.write(delivery)
                pending.delivered_to.add(name)
                if not destination.transactional:
                    kept.add(name)
        except StageError:
            pending.delivered_to = kept
            raise
