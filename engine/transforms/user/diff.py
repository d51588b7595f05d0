"""A field-level diff of two HL7 v2 messages: what a transform changed.

Segments are paired by name and rank (the second OBX with the second OBX); a field is named
``PID-5``, or ``OBX[2]-3`` when the message has several segments of that name. Values are shown
raw (escaped, with their separators), as the receiving system reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.hl7v2.reader import Message, Segment

ADDED = "(segment added)"
REMOVED = "(segment removed)"


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    before: str
    after: str
    #: A segment added or removed (``before`` or ``after`` is its whole text or empty).
    segment: bool = False


def field_changes(before: Message, after: Message) -> list[Change]:
    """The changed fields, in the order of the segments (the original's first, then added)."""
    old, new = _ranked(before), _ranked(after)
    counts = {
        name: max(_count(old, name), _count(new, name)) for name, _ in (*old.keys(), *new.keys())
    }
    changes: list[Change] = []
    for key in dict.fromkeys((*old.keys(), *new.keys())):
        name, rank = key
        label = f"{name}[{rank}]" if counts[name] > 1 else name
        b, a = old.get(key), new.get(key)
        if b is None or a is None:
            text = (a or b).text  # type: ignore[union-attr]
            changes.append(
                Change(label, "" if b is None else text, "" if a is None else text, segment=True)
            )
            continue
        if b.text == a.text:
            continue
        for number in range(1, max(len(b), len(a)) + 1):
            if b.field(number) != a.field(number):
                changes.append(Change(f"{label}-{number}", b.field(number), a.field(number)))
    return changes


def _ranked(msg: Message) -> dict[tuple[str, int], Segment]:
    seen: dict[str, int] = {}
    out: dict[tuple[str, int], Segment] = {}
    for seg in msg.segments:
        seen[seg.name] = seen.get(seg.name, 0) + 1
        out[(seg.name, seen[seg.name])] = seg
    return out


def _count(ranked: dict[tuple[str, int], Segment], name: str) -> int:
    return max((rank for n, rank in ranked if n == name), default=0)


def describe(change: Change) -> str:
    """One line: ``OBX[1]-3: 'GB^WBC' -> '6690-2^Leukocytes...^LN'``."""
    if change.segment:
        return (
            f"{change.path}: {ADDED} {change.after!r}"
            if change.after
            else (f"{change.path}: {REMOVED}")
        )
    before = repr(change.before) if change.before else "(empty)"
    after = repr(change.after) if change.after else "(empty)"
    return f"{change.path}: {before} -> {after}"
