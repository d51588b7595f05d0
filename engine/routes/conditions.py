"""Conditions on a message, shared by filters and routes."""

from __future__ import annotations

import re
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from engine.hl7v2.editable import EditableMessage
from engine.hl7v2.paths import EVERY, FieldPath, parse_field_path, values
from engine.hl7v2.reader import Message


class Routable(Protocol):
    """What conditions read: an HL7 v2 message, or a CDA document received alone (message
    type ``CDA``, its type code as trigger, no fields)."""

    @property
    def message_type(self) -> str: ...

    @property
    def trigger(self) -> str: ...

    def get(self, path: str) -> str: ...


class FieldCondition(BaseModel):
    """A test on one field, addressed as ``SEG-f[rep].c.s`` (``PID-3.4``, ``MSH-9.2``).

    A path naming several values (``OBX[*]-3``, ``PID-3[*].5``, :mod:`engine.hl7v2.paths`)
    holds when any of them passes (``exists: false``: when none is set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(
        description="HL7 field path, e.g. MSH-4, PID-3[1].4, OBX-3.1; OBX[*]-3: any OBX"
    )
    equals: str | None = Field(default=None, description="the value equals this text")
    one_of: tuple[str, ...] | None = Field(
        default=None, alias="in", description="the value is one of these"
    )
    matches: str | None = Field(default=None, description="the value matches this regex")
    exists: bool | None = Field(default=None, description="the field is (not) empty")
    #: Set for a path the lazy reader cannot read alone (an index or a wildcard on the segment,
    #: a repetition wildcard).
    _several: FieldPath | None = PrivateAttr(default=None)

    @field_validator("field")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        parse_field_path(value)
        return value

    @field_validator("matches")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        tests = [self.equals, self.one_of, self.matches, self.exists]
        if sum(t is not None for t in tests) != 1:
            raise ValueError("give exactly one of equals, in, matches, exists")
        path = parse_field_path(self.field)
        if path.occurrence != 1 or path.rep == EVERY:
            self._several = path
        return self

    def test(self, msg: Routable) -> bool:
        if self._several is not None:
            found = _values(msg, self._several)
            if self.exists is False:
                return not any(found)
            return any(self._holds(v) for v in found)
        return self._holds(msg.get(self.field))

    def _holds(self, value: str) -> bool:
        if self.equals is not None:
            return value == self.equals
        if self.one_of is not None:
            return value in self.one_of
        if self.matches is not None:
            return re.search(self.matches, value) is not None
        return bool(value) == self.exists


class Condition(BaseModel):
    """All the given tests must hold. An empty condition holds for every message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_types: tuple[str, ...] | None = Field(
        default=None, description='MSH-9 type^trigger, e.g. ["ADT^A01", "ORU^R01"]; "ADT^*" ok'
    )
    sending_facilities: tuple[str, ...] | None = Field(default=None, description="MSH-4.1 values")
    sending_applications: tuple[str, ...] | None = Field(default=None, description="MSH-3.1 values")
    fields: tuple[FieldCondition, ...] = Field(default=(), description="tests on field values")

    @property
    def documents_only(self) -> bool:
        """True when the condition tests nothing but the message type (all a standalone CDA
        has)."""
        return (
            not self.fields
            and self.sending_facilities is None
            and self.sending_applications is None
        )

    def test(self, msg: Routable) -> bool:
        if self.message_types is not None and not type_matches(
            f"{msg.message_type}^{msg.trigger}", self.message_types
        ):
            return False
        if (
            self.sending_facilities is not None
            and msg.get("MSH-4.1") not in self.sending_facilities
        ):
            return False
        if (
            self.sending_applications is not None
            and msg.get("MSH-3.1") not in self.sending_applications
        ):
            return False
        return all(f.test(msg) for f in self.fields)


def _values(msg: Routable, path: FieldPath) -> list[str]:
    """Every value a path names: the lazy reader's message, or an edited one (transforms)."""
    if isinstance(msg, Message):
        return values(msg, path)
    if isinstance(msg, EditableMessage):
        return msg.all_values(path)
    return [msg.get(path.text)]  # a CDA document alone: no fields


def type_matches(type_trigger: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """``ADT^A01`` matches ``ADT^A01``, ``ADT^*`` and ``*``."""
    kind = type_trigger.split("^", 1)[0]
    return any(p in ("*", type_trigger, f"{kind}^*") for p in patterns)
