"""The transform stage's mapping for the record store: for each record-store target, the store
operation its copy of the message asks for, with the CDA documents it files parsed and checked
once (:mod:`engine.transforms.map_store`). The channel's own transform steps are stages of
their own (:mod:`engine.pipeline.channel_steps`)."""

from __future__ import annotations

from engine.pipeline.delivery import RecordRules
from engine.pipeline.stages import Work
from engine.transforms.map_store import map_for_store


class MapForStore:
    name = "transform"

    def __init__(self, targets: dict[str, RecordRules]) -> None:
        self.targets = targets

    def run(self, work: Work) -> None:
        work.operations = {
            name: map_for_store(form, rules.xsd, rules.cisis_header)
            for name, (form, _raw) in work.forms.items()
            if (rules := self.targets.get(name)) is not None
            and name not in work.pending.delivered_to
        }
