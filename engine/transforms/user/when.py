"""``when:`` of a transform operation, compiled once when the step is built.

:meth:`engine.channels.conditions.Condition.test` reads ``MSH-9.1``, ``MSH-9.2``... by their
text on each call; here the header paths are parsed once and the message types kept as a set.
Field tests (``fields:``) are the condition's own. The result is the condition's on every
message (tests/unit/test_transform_fast_path.py).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.channels.conditions import Condition
from engine.hl7v2.editable import EditableMessage
from engine.hl7v2.paths import parse_field_path

Test = Callable[[EditableMessage], bool]

_TYPE = parse_field_path("MSH-9.1")
_TRIGGER = parse_field_path("MSH-9.2")
_FACILITY = parse_field_path("MSH-4.1")
_APPLICATION = parse_field_path("MSH-3.1")


def compiled(when: Condition) -> Test:
    types = None if when.message_types is None else frozenset(when.message_types)
    facilities = when.sending_facilities
    applications = when.sending_applications
    fields = when.fields

    def test(msg: EditableMessage) -> bool:
        if types is not None:
            kind = msg.get(_TYPE)
            type_trigger = f"{kind}^{msg.get(_TRIGGER)}"
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
