"""The route stage: the destinations a message goes to (:mod:`engine.routes.router`) and each
one's copy, with its bytes; the copies a step changed are journaled (a replay's replace an
earlier run's)."""

from __future__ import annotations

from engine.channels.config import ChannelConfig
from engine.hl7v2.reader import Message
from engine.journal import transformed
from engine.pipeline.channel_steps import NO_ROUTE, edits_message, encoded, routed, router
from engine.pipeline.delivery import Payload
from engine.pipeline.stages import Work, stage


class Route:
    name = "route"

    def __init__(self, config: ChannelConfig) -> None:
        self.router = router(config)
        #: Some step may change the message: its forms are journaled.
        self.journal_forms = edits_message(config)

    def run(self, work: Work) -> None:
        forms = routed(self.router, work.message)
        if not forms:
            work.filtered = NO_ROUTE
            return
        work.forms = _encoded(work, forms)
        if self.journal_forms:
            original = work.parsed
            changed = {n: raw for n, (form, raw) in work.forms.items() if form is not original}
            with stage("transform"):
                transformed.record(work.conn, work.pending.id, changed, work.now)


def _encoded(work: Work, forms: dict[str, Payload]) -> dict[str, tuple[Payload, bytes]]:
    """Each target's message and bytes: the raw bytes unless a step changed it."""
    pending = work.pending
    out: dict[str, tuple[Payload, bytes]] = {}
    done: dict[int, bytes] = {}
    for name, form in forms.items():
        if form is work.parsed or not isinstance(form, Message):
            out[name] = (form, pending.raw)
            continue
        raw = done.get(id(form))
        if raw is None:
            with stage("transform"):
                raw = done[id(form)] = encoded(form, pending.charset)
        out[name] = (form, raw)
    return out
