"""The routing decision: which destinations receive a message, and with which route's steps.

A channel's routes are tried in order; every route whose condition holds sends the message to
its destinations, but a destination named by an earlier matching route keeps that route's
form (and steps). Pure: the pipeline's route stage applies the steps and delivers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.hl7v2.reader import Message
from engine.routes.conditions import Condition, Routable

#: A route's own step: a function of a message (``engine.transforms.user``).
Edit = Callable[[Message], Message]


@dataclass(frozen=True, slots=True)
class RouteRule:
    """Send messages matching ``when`` to ``to``, after ``edits``."""

    when: Condition
    to: tuple[str, ...]
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True, slots=True)
class Targets:
    """Destinations one route takes, and the steps their copy of the message goes through."""

    names: tuple[str, ...]
    edits: tuple[Edit, ...]


class Router:
    def __init__(self, rules: Sequence[RouteRule]) -> None:
        self.rules = tuple(rules)
        #: Some route edits its copy of the message.
        self.edits = any(r.edits for r in self.rules)

    def choose(self, msg: Routable) -> list[Targets]:
        """The destinations ``msg`` goes to, grouped by the route that takes them, in route
        order; empty when no route matches."""
        chosen: list[Targets] = []
        seen: set[str] = set()
        for rule in self.rules:
            if not rule.when.test(msg):
                continue
            names = tuple(n for n in rule.to if n not in seen)
            if names:
                seen.update(names)
                chosen.append(Targets(names, rule.edits))
        return chosen
