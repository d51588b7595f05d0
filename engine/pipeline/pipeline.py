"""A channel's pipeline: its stages, run in order on one journaled message.

``process`` runs the stages inside the caller's transaction and returns the message's end
state, or raises :class:`StageError` naming the stage that failed (the journal's
``error_stage``). The stages, each a named unit with ``run(work)``:

1. ``parse`` (:mod:`~engine.pipeline.stage_parse`): the journaled bytes read back; the type
   the channel accepts.
2. the channel's steps in its order (:mod:`~engine.pipeline.channel_steps`): ``validate``
   (hl7apy), ``filter`` (a dropped message ends ``filtered``), ``transform`` (transform and
   python steps).
3. ``route`` (:mod:`~engine.pipeline.stage_route`, rules in :mod:`engine.routes.router`): the
   target destinations and each one's copy (a route's own steps are ``transform``).
4. ``transform`` (:mod:`~engine.pipeline.stage_transform`): for a record-store target, the
   store operation its copy asks for, its CDA documents parsed and checked once.
5. ``identify`` (:mod:`~engine.pipeline.stage_identify`): the patient each operation is filed
   under; an uncertain patient stops the message here (held or review), before any delivery.
6. ``deliver`` (:mod:`~engine.pipeline.stage_deliver`): each target's ``write``, errors tagged
   ``destination:<name>``.

Routing comes before identification: only a message the routes send to the record store is
identified, in the form its route gave it. Record-store writes go through ``Delivery.conn``,
the pipeline's transaction: they commit with the message's end state, or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import structlog
from sqlalchemy import Connection

from engine.channels.config import ChannelConfig
from engine.errors import EngineError
from engine.journal.message_tables import State
from engine.journal.records import Pending
from engine.pipeline.business_ack import BusinessAcks
from engine.pipeline.channel_steps import StepStage, step_stages
from engine.pipeline.delivery import Destination, RecordDestination, RecordRules
from engine.pipeline.stage_deliver import Deliver
from engine.pipeline.stage_identify import Identify
from engine.pipeline.stage_parse import Parse
from engine.pipeline.stage_route import Route
from engine.pipeline.stage_transform import MapForStore
from engine.pipeline.stages import Stage, StageError, Work, stage, stage_error

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
        self.destinations = destinations
        self.stages = build_stages(config, destinations)
        #: How many leading stages need no database (see :meth:`ahead`).
        self.pure_stages = next(
            (i for i, step in enumerate(self.stages) if not needs_no_database(step)),
            len(self.stages),
        )
        #: Its source answers once the pipeline is done (``answer_after: processing``).
        self.answers_after_processing = (
            getattr(config.source, "answer_after", "commit") == "processing"
        )
        ack = config.business_ack
        self.business_acks = BusinessAcks(self.name, ack, destinations) if ack is not None else None

    def close(self) -> None:
        for destination in self.destinations.values():
            destination.close()

    def ahead(self, pending: Pending, now: datetime) -> Work | None:
        """The leading stages that need no database (parse, the channel's steps, route unless
        it journals changed forms, transform), run on ``pending`` before the transaction that
        will process it: what :meth:`process` then goes on from. None when one of them fails:
        the transaction runs it again, and records the failure where it happens."""
        work = Work(_NO_CONNECTION, pending, now)
        try:
            for step in self.stages[: self.pure_stages]:
                step.run(work)
                if work.filtered:
                    break
        except Exception:  # run again in the transaction, which records it
            return None
        return work

    def process(
        self, conn: Connection, pending: Pending, now: datetime, ahead: Work | None = None
    ) -> Outcome:
        """Run the stages on ``pending`` in ``conn``'s transaction; with ``ahead`` (what
        :meth:`ahead` made of the same journaled message), from the first stage it left."""
        stages = self.stages
        if ahead is not None and _same(ahead.pending, pending):
            work, stages = ahead, stages[self.pure_stages :]
            work.conn, work.pending, work.now = conn, pending, now
            if work.filtered:
                return Outcome(State.FILTERED, work.filtered)
        else:
            work = Work(conn, pending, now)
        for step in stages:
            try:
                step.run(work)
            except Exception as exc:
                tagged = stage_error(step.name, exc)
                if tagged is None or tagged is exc:
                    raise
                raise tagged from exc
            if work.filtered:
                return Outcome(State.FILTERED, work.filtered)
        if self.business_acks is not None:
            self.business_acks.delivered(conn, pending, work.message, now)
        return Outcome(State.DELIVERED)

    def dead_lettered(
        self, conn: Connection, pending: Pending, error: EngineError, now: datetime
    ) -> None:
        """Told by the worker once a message is dead-lettered (its business acknowledgement)."""
        if self.business_acks is not None:
            self.business_acks.dead_lettered(conn, pending, error, now)


#: The connection of a :class:`Work` made ahead of its transaction: a stage that touches it
#: there fails, and the transaction runs it again.
_NO_CONNECTION = cast(Connection, None)


def _same(made: Pending, claimed: Pending) -> bool:
    """Whether the stages run ahead on ``made`` hold for ``claimed``: the same message, with
    the same destinations already written."""
    return (
        made.id == claimed.id
        and made.delivered_to == claimed.delivered_to
        and made.charset == claimed.charset
        and made.raw == claimed.raw
    )


def needs_no_database(step: Stage) -> bool:
    """Whether a stage is a function of the message alone (it may run ahead of the
    transaction): parse, the channel's steps, transform, and route when it journals no
    changed form."""
    if isinstance(step, Route):
        return not step.journal_forms
    return isinstance(step, Parse | StepStage | MapForStore)


def build_stages(config: ChannelConfig, destinations: dict[str, Destination]) -> tuple[Stage, ...]:
    """The channel's stages, in the order they run. Transform and identify are there only when
    some destination files into the record store."""
    records = record_targets(destinations)
    stages: list[Stage] = [Parse(config.name, config.accept), *step_stages(config)]
    stages.append(Route(config))
    if records:
        stages += [MapForStore(records), Identify(records)]
    stages.append(Deliver(config.name, destinations))
    return tuple(stages)


def record_targets(destinations: dict[str, Destination]) -> dict[str, RecordRules]:
    """The destinations filing into the record store, with the rules their messages are
    mapped and identified by."""
    return {name: d.rules for name, d in destinations.items() if isinstance(d, RecordDestination)}
