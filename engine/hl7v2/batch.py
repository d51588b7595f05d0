"""HL7 v2 batches: ``[FHS] {[BHS] {MSH ...} [BTS]} [FTS]`` split into their messages.

:func:`read_envelope` reads the whole structure and refuses, with one reason naming positions
only (never a value: it reaches the NAK), anything that would make a message boundary a guess:
a segment outside any message, FHS anywhere but first, a BHS while a batch is still open, a
BTS closing no batch, a segment after FTS, or a BTS-1 (message count) or FTS-1 (batch count)
that does not match what the payload holds. Trailers may be left out (python-hl7's samples
do): the end of the payload closes what is open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import ParseError
from engine.hl7v2.escape import unescape
from engine.hl7v2.msh import first_line
from engine.hl7v2.reader import split_segments
from engine.hl7v2.separators import Separators

_ENVELOPE = ("FHS", "BHS", "BTS", "FTS")
#: A batch trailer (BTS, FTS) as a segment; trailers end a payload, so only its tail is read.
_TRAILER = re.compile(r"[\r\n](?:BTS|FTS)")
_TAIL = 512


def is_batch(text: str) -> bool:
    """Whether ``text`` starts with a file (FHS) or batch (BHS) header."""
    return first_line(text)[:3] in ("FHS", "BHS")


def holds_several(text: str) -> bool:
    """Whether a payload starting with MSH holds another message, or ends with a batch
    trailer: a batch without header (python-hl7 reads those as batches too).

    On the single-message path: one ``str.find`` over the text (``MSH`` seldom occurs in
    data) and a look at its last bytes, no regex over the whole text."""
    at = text.find("MSH", text.find("MSH") + 3)
    while at != -1:
        if text[at - 1] in "\r\n":
            return True
        at = text.find("MSH", at + 3)
    tail = text[-_TAIL:]
    if "TS" not in tail:
        return False
    return _TRAILER.search(tail) is not None


@dataclass(slots=True)
class Batch:
    """One batch: its BHS (None when its messages came without one), BHS-11, its messages
    (segments joined by CR) and the number of the segment starting each."""

    header: str | None
    control_id: str
    messages: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    #: BTS-1 as sent (None: no BTS, or an empty BTS-1).
    count: str | None = None


@dataclass(slots=True)
class Envelope:
    """A whole payload read as a batch file."""

    separators: Separators
    file_header: str | None
    file_control_id: str
    batches: list[Batch]
    #: FTS-1 as sent (None: no FTS, or an empty FTS-1).
    batch_count: str | None = None

    @property
    def message_count(self) -> int:
        return sum(len(b.messages) for b in self.batches)


def read_envelope(text: str) -> Envelope:
    """The batches of ``text`` (which starts with FHS, BHS or MSH); raises
    :class:`ParseError` with the first structural fault found."""
    segments = split_segments(text)
    if not segments:
        raise ParseError("the batch is empty")
    seps = Separators.from_header(segments[0])
    reader = _Reader(seps)
    for number, segment in enumerate(segments, start=1):
        reader.take(number, segment)
    reader.close()
    envelope = Envelope(
        seps, reader.fhs, envelope_field(reader.fhs, seps, 11), reader.batches, reader.fts_count
    )
    _check_counts(envelope)
    return envelope


class _Reader:
    def __init__(self, seps: Separators) -> None:
        self.seps = seps
        self.fhs: str | None = None
        self.fts_count: str | None = None
        self.fts_at = 0
        self.batches: list[Batch] = []
        self.open: Batch | None = None
        self.in_message = False

    def take(self, number: int, segment: str) -> None:
        name = segment[:3]
        if self.fts_at:
            raise ParseError(f"segment {number} ({name!r}) follows the file trailer (FTS)")
        if name == "MSH":
            if self.open is None:
                self.open = Batch(None, "")
            self.open.messages.append(segment)
            self.open.starts.append(number)
            self.in_message = True
            return
        if name not in _ENVELOPE:
            if not self.in_message:
                raise ParseError(f"batch segment {number} ({name!r}) is outside any message")
            assert self.open is not None
            self.open.messages[-1] += "\r" + segment
            return
        self.in_message = False
        if name == "FHS":
            if number != 1:
                raise ParseError(f"segment {number} is an FHS: a file header opens the file only")
            self.fhs = segment
        elif name == "BHS":
            if self.open is not None and self.open.header is not None:
                raise ParseError(
                    f"segment {number} opens a batch (BHS) while batch {len(self.batches) + 1} "
                    "has no trailer (BTS)"
                )
            self.close()
            self.open = Batch(segment, envelope_field(segment, self.seps, 11))
        elif name == "BTS":
            if self.open is None:
                raise ParseError(f"segment {number} closes a batch (BTS) that was never opened")
            self.open.count = envelope_field(segment, self.seps, 1) or None
            self.close()
        else:  # FTS
            self.close()
            self.fts_at = number
            self.fts_count = envelope_field(segment, self.seps, 1) or None

    def close(self) -> None:
        if self.open is not None:
            self.batches.append(self.open)
            self.open = None
        self.in_message = False


def envelope_field(segment: str | None, seps: Separators, number: int) -> str:
    """Field ``number`` of an envelope segment, first component, unescaped (FHS/BHS count
    their field separator as field 1, as MSH does; BTS/FTS do not)."""
    if segment is None:
        return ""
    fields = segment.split(seps.field)
    index = number - 1 if segment[:3] in ("FHS", "BHS") else number
    if index >= len(fields):
        return ""
    return unescape(fields[index].split(seps.component, 1)[0], seps).strip()


def _check_counts(envelope: Envelope) -> None:
    for number, batch in enumerate(envelope.batches, start=1):
        if batch.count is not None and _count(batch.count, "BTS-1") != len(batch.messages):
            raise ParseError(
                f"BTS-1 of batch {number} counts {_count(batch.count, 'BTS-1')} messages; "
                f"the batch holds {len(batch.messages)}"
            )
    count = envelope.batch_count
    if count is not None and _count(count, "FTS-1") != len(envelope.batches):
        raise ParseError(
            f"FTS-1 counts {_count(count, 'FTS-1')} batches; the file holds {len(envelope.batches)}"
        )


def _count(value: str, where: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise ParseError(f"{where} is not a count")
    return int(value)
