"""A channel's steps (validate, filter, transform, python) as pipeline stages, one per step in
the channel's order, and its routes' forms; with :class:`ChannelSteps`, the same steps and
routes as one function of a message for the dry run (``aiguillage transform``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from engine.cda.standalone import CdaPayload
from engine.channels.config import ChannelConfig, FilterStep, Step, ValidateStep
from engine.errors import EncodingError, ValidationError
from engine.hl7v2.reader import Message
from engine.pipeline.delivery import Payload
from engine.pipeline.stages import Work, stage
from engine.routes.router import Router, RouteRule
from engine.transforms.validate import validate_structure

#: A step: the message it leaves, or None when the message stops here (filtered).
Apply = Callable[[Payload], Payload | None]
FILTERED = "filter step"
NO_ROUTE = "no route matched"


@dataclass(frozen=True, slots=True)
class StepStage:
    """One of the channel's steps, named by its kind: ``validate``, ``filter`` or ``transform``
    (transform and python steps)."""

    name: str
    apply: Apply

    def run(self, work: Work) -> None:
        kept = self.apply(work.message)
        if kept is None:
            work.filtered = FILTERED
        else:
            work.payload = kept


def step_stages(config: ChannelConfig) -> tuple[StepStage, ...]:
    return tuple(_stage(s) for s in config.steps)


def router(config: ChannelConfig) -> Router:
    """The channel's routes (or its default one) as routing rules."""
    return Router(
        [
            RouteRule(r.when, r.to, tuple(s.build() for s in r.steps))
            for r in config.effective_routes()
        ]
    )


def routed(router_: Router, msg: Payload) -> dict[str, Payload]:
    """Each target destination's copy of ``msg``: the route's steps applied (stage
    ``transform``). Empty when no route matches."""
    forms: dict[str, Payload] = {}
    for targets in router_.choose(msg):
        form = msg
        if targets.edits and isinstance(form, Message):  # the loader refuses edits on documents
            with stage("transform"):
                for edit in targets.edits:
                    form = edit(form)
        forms.update(dict.fromkeys(targets.names, form))
    return forms


@dataclass(frozen=True, slots=True)
class Stepped:
    """What the steps made of a message: ``filtered`` says why it stops, else ``forms`` gives
    each target destination the message it receives."""

    filtered: str = ""
    forms: dict[str, Payload] = field(default_factory=dict)


class ChannelSteps:
    """The channel's steps and routes as one function of a message (the dry run)."""

    def __init__(self, config: ChannelConfig) -> None:
        self.stages = step_stages(config)
        self.router = router(config)

    def run(self, msg: Payload) -> Stepped:
        """Raises :class:`engine.pipeline.stages.StageError` (stages ``validate``,
        ``transform``)."""
        for step in self.stages:
            with stage(step.name):
                kept = step.apply(msg)
            if kept is None:
                return Stepped(FILTERED)
            msg = kept
        forms = routed(self.router, msg)
        return Stepped(forms=forms) if forms else Stepped(NO_ROUTE)


def edits_message(config: ChannelConfig) -> bool:
    """Some step of the channel or of its routes may change the message (its forms are
    journaled)."""
    steps = any(not isinstance(s, ValidateStep | FilterStep) for s in config.steps)
    return steps or any(r.steps for r in config.effective_routes())


def _stage(step: Step) -> StepStage:
    if isinstance(step, ValidateStep):
        return StepStage("validate", partial(_validate, step.profile))
    if isinstance(step, FilterStep):
        return StepStage("filter", partial(_filter, step))
    return StepStage("transform", partial(_edit, step.build()))


def _validate(profile: str, msg: Payload) -> Payload:
    if isinstance(msg, CdaPayload):  # the channel loader refuses this combination
        raise ValidationError("the validate step checks HL7 v2 messages, not CDA documents")
    validate_structure(msg.text, profile)
    return msg


def _filter(step: FilterStep, msg: Payload) -> Payload | None:
    if step.keep is not None:
        return msg if step.keep.test(msg) else None
    assert step.drop is not None
    return None if step.drop.test(msg) else msg


def _edit(edit: Callable[[Message], Message], msg: Payload) -> Payload:
    if isinstance(msg, Message):  # the loader refuses edits on document channels
        return edit(msg)
    return msg


def encoded(form: Message, charset: str) -> bytes:
    """A transformed message's bytes, in the character set it came in."""
    try:
        return form.text.encode(charset or "utf-8")
    except (UnicodeEncodeError, LookupError) as exc:
        raise EncodingError(f"a transformed value cannot be written in {charset}") from exc
