"""HL7 v2 batches: ``[FHS] {BHS {MSH ...} BTS} [FTS]`` split into their messages."""

from __future__ import annotations

from engine.errors import ParseError
from engine.hl7v2.header import first_line
from engine.hl7v2.reader import split_segments

_ENVELOPE = ("FHS", "BHS", "BTS", "FTS")


def is_batch(text: str) -> bool:
    """Whether ``text`` starts with a file (FHS) or batch (BHS) header."""
    return first_line(text)[:3] in ("FHS", "BHS")


def split_batch(text: str) -> list[str]:
    """The messages of a batch, each from its MSH to the segment before the next MSH or
    envelope segment, with segments joined by CR; ``[text]`` when ``text`` is no batch.

    A segment outside any message (say, a PID right after BHS) raises :class:`ParseError`
    rather than being dropped: a batch must never lose data silently.
    """
    if not is_batch(text):
        return [text]
    messages: list[list[str]] = []
    in_message = False
    for number, segment in enumerate(split_segments(text), start=1):
        name = segment[:3]
        if name == "MSH":
            messages.append([segment])
            in_message = True
        elif name in _ENVELOPE:
            in_message = False
        elif in_message:
            messages[-1].append(segment)
        else:
            raise ParseError(f"batch segment {number} ({name!r}) is outside any message")
    return ["\r".join(segments) for segments in messages]
