"""``when:`` of a transform operation, compiled once when the step is built.

:meth:`engine.routes.conditions.Condition.test` reads ``MSH-9.1``, ``MSH-9.2``... by their
text on each call; here the header paths are parsed once and the message types kept as a set.
Field tests (``fields:``) are the condition's own. The result is the condition's on every
message (tests/unit/test_transform_fast_path.py).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.hl7v2.editable import EditableMessage
from engine.hl7v2.escape import unescape
from engine.hl7v2.paths import parse_field_path
from engine.routes.conditions import Condition

Test = Callable[[EditableMessage], bool]

_FACILITY = parse_field_path("MSH-4.1")
_APPLICATION = parse_field_path("MSH-3.1")


def compiled(when: Condition) -> Test:
    types = None if when.message_types is None else frozenset(when.message_types)
    facilities = when.sending_facilities
    applications = when.sending_applications
    fields = when.fields

    def test(msg: EditableMessage) -> bool:
        if types is not None:
            type_trigger = _type_trigger(msg)
            # conditions.type_matches: the pattern "*", the type^trigger, or the type^*
            if not (
                "*" in types
                or type_trigger in types
                or f"{type_trigger.split('^', 1)[0]}^*" in types
            ):
                return False
        if facilities is not None and msg.get(_FACILITY) not in facilities:
            return False
        if applications is not None and msg.get(_APPLICATION) not in applications:
            return False
        return all(f.test(msg) for f in fields)

    return test


def _type_trigger(msg: EditableMessage) -> str:
    """``MSH-9.1^MSH-9.2`` as ``msg.get`` reads them (unescaped, first repetition), with one
    split of MSH-9."""
    found = msg.named("MSH")
    if not found:
        return "^"
    seps = msg.separators
    fields = found[0].fields_upto(seps, 9)
    raw = fields[9] if len(fields) > 9 else ""
    if seps.repetition in raw:
        raw = raw.split(seps.repetition, 1)[0]
    comps = raw.split(seps.component, 2)
    trigger = comps[1] if len(comps) > 1 else ""
    return f"{unescape(comps[0], seps)}^{unescape(trigger, seps)}"
