"""The deliver stage: each target destination not delivered yet gets its copy of the message
(and, for the record store, what the transform and identify stages made of it)."""

from __future__ import annotations

from engine.journal.lookups import sender_of
from engine.pipeline.delivery import Delivery, Destination
from engine.pipeline.stages import StageError, Work, stage


class Deliver:
    name = "deliver"

    def __init__(self, channel: str, destinations: dict[str, Destination]) -> None:
        self.channel = channel
        self.destinations = destinations

    def run(self, work: Work) -> None:
        """Write to each target not yet delivered (errors: stage ``destination:<name>``). On
        failure, remember only the deliveries the attempt's rollback does not undo, so that the
        retry redoes the others."""
        pending = work.pending
        kept = set(pending.delivered_to)
        sender = pending.sender  # the journal row's sender: a replay keeps the original one
        if sender is None:
            sender = sender_of(work.conn, pending.id)
        try:
            for name, (form, raw) in work.forms.items():
                if name in pending.delivered_to:
                    continue  # delivered on an earlier attempt
                destination = self.destinations[name]
                delivery = Delivery(
                    work.conn,
                    pending.id,
                    self.channel,
                    form,
                    raw,
                    work.now,
                    sender=sender,
                    filed=work.filed.get(name),
                )
                with stage(f"destination:{name}"):
                    destination.write(delivery)
                pending.delivered_to.add(name)
                if not destination.transactional:
                    kept.add(name)
        except StageError:
            pending.delivered_to = kept
            raise
