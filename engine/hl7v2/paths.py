"""HL7 v2 field paths with wildcards: which segments, repetitions and components a path names.

The reader's syntax (``PID-3[2].4.2``) is extended with a segment index and ``*``:

- ``OBX-3``: the first OBX (as the reader reads it); ``OBX[2]-3`` the second; ``OBX[*]-3`` every
  OBX;
- ``PID-3[2]``: the second repetition; ``PID-3[*]`` every repetition; ``PID-3[*].1`` the first
  component of every repetition.

Indexes are 1-based. Conditions read a wildcard path as "any of the values".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from engine.hl7v2.reader import Message

#: ``*`` as an index: every segment of the type, or every repetition.
EVERY: Final = 0

_PATH = re.compile(
    r"([A-Z][A-Z0-9]{2})(?:\[(\d+|\*)\])?-(\d+)(?:\[(\d+|\*)\])?(?:\.(\d+))?(?:\.(\d+))?\Z"
)


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A parsed path. ``occurrence`` and ``rep``: 1-based, :data:`EVERY` for ``*``; ``rep`` is
    None when the path names no repetition (the first one is read; a write to the field alone
    replaces all of them). ``component``/``subcomponent``: 0 when not named."""

    segment: str
    occurrence: int
    field: int
    rep: int | None
    component: int
    subcomponent: int
    text: str

    @property
    def wildcard(self) -> bool:
        return self.occurrence == EVERY or self.rep == EVERY

    @property
    def whole_field(self) -> bool:
        """The path names a field with every repetition (``PID-3``, not ``PID-3[1]``)."""
        return self.rep is None and self.component == 0

    @property
    def depth(self) -> int:
        """0 field, 1 repetition, 2 component, 3 subcomponent: what a copy carries."""
        if self.subcomponent:
            return 3
        if self.component:
            return 2
        return 0 if self.rep is None else 1

    def __str__(self) -> str:
        return self.text


def parse_field_path(text: str) -> FieldPath:
    """Parse a path (``ValueError`` naming the expected syntax when it is not one)."""
    m = _PATH.match(text)
    if m is None or int(m.group(3)) == 0:
        raise ValueError(
            f"bad HL7 field path {text!r} (expected e.g. PID-3, MSH-9.2, PID-3[2].4.1, "
            "OBX[*]-3 for every OBX, PID-3[*] for every repetition)"
        )
    occurrence = _index(m.group(2), 1)
    rep = None if m.group(4) is None else _index(m.group(4), 1)
    component, sub = int(m.group(5) or 0), int(m.group(6) or 0)
    if (component == 0 and sub) or (m.group(5) is not None and component == 0):
        raise ValueError(f"bad HL7 field path {text!r}: components are numbered from 1")
    return FieldPath(m.group(1), occurrence, int(m.group(3)), rep, component, sub, text)


def _index(group: str | None, default: int) -> int:
    if group is None:
        return default
    if group == "*":
        return EVERY
    value = int(group)
    if value == 0:
        raise ValueError("indexes are numbered from 1")
    return value


def values(msg: Message, path: FieldPath) -> list[str]:
    """Every unescaped value a path names in a message read with the lazy reader (``[]`` when
    the segment is absent; a repetition wildcard over an empty field gives nothing)."""
    segments = [s for s in msg.segments if s.name == path.segment]
    if path.occurrence != EVERY:
        segments = segments[path.occurrence - 1 : path.occurrence]
    out: list[str] = []
    for seg in segments:
        if path.rep == EVERY:
            count = len(seg.repetitions(path.field))
            reps = range(1, count + 1)
        else:
            reps = range(path.rep or 1, (path.rep or 1) + 1)
        out.extend(seg.get(path.field, path.component, path.subcomponent, r) for r in reps)
    return out
