"""A channel's steps (validate, filter, transform, python) and its routes' own steps, as one
function of a message: shared by the pipeline and the dry run (``aiguillage transform``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.cda.standalone import CdaPayload
from engine.channels.config import ChannelConfig, FilterStep, Route, Step, ValidateStep
from engine.errors import EncodingError, ValidationError
from engine.hl7v2.reader import Message
from engine.pipeline.delivery import Payload
from engine.pipeline.stages import stage
from engine.transforms.validate import validate_structure

Edit = Callable[[Message], Message]


@dataclass(frozen=True, slots=True)
class Stepped:
    """What the steps made of a message: ``filtered`` says why it stops, else ``forms`` gives
    each target destination the message it receives."""

    filtered: str = ""
    forms: dict[str, Payload] = field(default_factory=dict)


class ChannelSteps:
    def __init__(self, config: ChannelConfig) -> None:
        self.steps = tuple(_built(s) for s in config.steps)
        self.routes: tuple[Route, ...] = config.effective_routes()
        self.route_edits = tuple(tuple(s.build() for s in r.steps) for r in self.routes)
        #: Some step may change the message: its forms are journaled.
        self.transforms = any(
            not isinstance(s, ValidateStep | FilterStep) for s in self.steps
        ) or any(self.route_edits)

    def run(self, msg: Payload) -> Stepped:
        """Raises :class:`engine.pipeline.stages.StageError` (stages ``validate``,
        ``transform``)."""
        for step in self.steps:
            if isinstance(step, ValidateStep):
                with stage("validate"):
                    validate_structure(_hl7_text(msg), step.profile)
            elif isinstance(step, FilterStep):
                if not _keeps(step, msg):
                    return Stepped("filter step")
            elif isinstance(msg, Message):  # the loader refuses edits on document channels
                with stage("transform"):
                    msg = step(msg)
        forms: dict[str, Payload] = {}
        for route, edits in zip(self.routes, self.route_edits, strict=True):
            if not route.when.test(msg):
                continue
            form = msg
            names = [n for n in route.to if n not in forms]
            if names and edits and isinstance(form, Message):
                with stage("transform"):
                    for edit in edits:
                        form = edit(form)
            forms.update(dict.fromkeys(names, form))
        return Stepped(forms=forms) if forms else Stepped("no route matched")


def _built(step: Step) -> ValidateStep | FilterStep | Edit:
    if isinstance(step, ValidateStep | FilterStep):
        return step
    return step.build()


def encoded(form: Message, charset: str) -> bytes:
    """A transformed message's bytes, in the character set it came in."""
    try:
        return form.text.encode(charset or "utf-8")
    except (UnicodeEncodeError, LookupError) as exc:
        raise EncodingError(f"a transformed value cannot be written in {charset}") from exc


def _hl7_text(msg: Payload) -> str:
    if isinstance(msg, CdaPayload):  # the channel loader refuses this combination
        raise ValidationError("the validate step checks HL7 v2 messages, not CDA documents")
    return msg.text


def _keeps(step: FilterStep, msg: Payload) -> bool:
    if step.keep is not None:
        return step.keep.test(msg)
    assert step.drop is not None
    return not step.drop.test(msg)
