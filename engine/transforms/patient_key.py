"""The per-patient key the journal orders and searches messages by."""

from __future__ import annotations

from engine.hl7v2.reader import Message

_LOCAL_TYPES = ("PI", "MR")
_NULL = '""'


def patient_key(msg: Message) -> str | None:
    """``value^authority`` of the patient's local identifier, or None when PID-3 is empty.

    The first PID-3 repetition typed ``PI`` or ``MR`` wins, else the first with a value; the
    authority is CX-4.1, else CX-4.2. Runs on every message (hot path): it reads raw
    repetitions and unescapes only the one it keeps.
    """
    pid = msg.segment("PID")
    if pid is None:
        return None
    comp = msg.separators.component
    chosen = 0
    for i, raw in enumerate(pid.repetitions(3), start=1):
        parts = raw.split(comp, 5)
        if not parts[0] or parts[0] == _NULL:
            continue
        if len(parts) > 4 and parts[4] in _LOCAL_TYPES:
            chosen = i
            break
        if not chosen:
            chosen = i
    if not chosen:
        return None
    authority = pid.get(3, 4, 1, chosen) or pid.get(3, 4, 2, chosen)
    return f"{pid.get(3, 1, 0, chosen)}^{authority}"
