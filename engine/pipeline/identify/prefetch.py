"""The patients of a claimed batch, fetched ahead of its messages' identify stage.

Before the batch's messages run, the INS and local identifier values of each one's PID-3 (read
from the journaled bytes, as the identify stage will read them) are looked up in one statement
(:func:`engine.store.patient_lookups.prefetch`), instead of one lookup per message. This only
saves round trips: a lookup whose values were not all fetched ahead (a channel step changed
PID-3, an escaped value, a CDA document) queries the store as before, and the first change to a
patient in the batch (an ADT, a merge, an A47) or the first operation that settles the batch
forgets what was fetched, so a later message of the batch reads the store again: the next
result fetches the patients of the messages left in the batch once more (:func:`refetch`),
when at least :data:`REFETCH_MIN` are left, rather than one lookup each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection

from engine.errors import EngineError
from engine.hl7v2.reader import Segment, split_segments
from engine.hl7v2.separators import Separators
from engine.identity.hl7 import identifiers
from engine.journal.records import Pending
from engine.pipeline.payloads import is_xml
from engine.pipeline.stages import Stage
from engine.store import batch, patient_lookups
from engine.store.batch import BatchWrites

#: Where a connection keeps the identifiers of its open batch's messages, in batch order.
_KEY = "aiguillage.batch_identifiers"
#: Messages left in the batch (the one being identified included) worth fetching again for.
REFETCH_MIN = 8


@dataclass(frozen=True, slots=True)
class _Identifiers:
    batch: BatchWrites
    #: (message id, its INS values, its local identifier values), in the batch's order.
    messages: tuple[tuple[int, list[str], list[str]], ...]


class _Staged(Protocol):
    @property
    def stages(self) -> Sequence[Stage]: ...


def prefetch_patients(
    conn: Connection, pending: Iterable[Pending], pipelines: Mapping[str, _Staged]
) -> None:
    """Fetch the patients of the messages whose channel identifies patients, for the batch
    open on ``conn`` (nothing when none is open)."""
    current = batch.current(conn)
    if current is None:
        return
    identifying = {name for name, p in pipelines.items() if _identifies(p)}
    found = tuple(
        (message.id, *message_identifiers(message.raw, message.charset))
        for message in pending
        if message.channel in identifying
    )
    conn.info[_KEY] = _Identifiers(current, found)
    _fetch(conn, found)


def refetch(conn: Connection, message_id: int) -> None:
    """Fetch again the patients of ``message_id`` and the messages after it in the batch, when
    what was fetched ahead has been forgotten (a patient changed) and enough of them are left."""
    known: _Identifiers | None = conn.info.get(_KEY)
    current = batch.current(conn)
    if known is None or current is None or known.batch is not current:
        return
    if patient_lookups.prefetched(conn):
        return
    ids = [m[0] for m in known.messages]
    if message_id not in ids:
        return
    left = known.messages[ids.index(message_id) :]
    if len(left) >= REFETCH_MIN:
        _fetch(conn, left)


def _fetch(conn: Connection, messages: Sequence[tuple[int, list[str], list[str]]]) -> None:
    ins = {v for m in messages for v in m[1]}
    local = {v for m in messages for v in m[2]}
    patient_lookups.prefetch(conn, ins, local)


def message_identifiers(raw: bytes, charset: str) -> tuple[list[str], list[str]]:
    """The INS and local identifier values of an HL7 v2 message's PID-3; none when the bytes
    are not such a message (the parse stage will say why)."""
    if is_xml(raw, charset):
        return [], []
    try:
        text = raw.decode(charset or "utf-8").lstrip("\ufeff").lstrip()
        seps = Separators.from_header(text)
    except (UnicodeDecodeError, LookupError, EngineError):
        return [], []
    pid = _pid_segment(text, seps)
    if pid is None:
        return [], []
    ins, local, _ = identifiers(Segment(pid, seps).repetitions(3), seps)
    return [i.value for i in ins], [i.value for i in local]


def _pid_segment(text: str, seps: Separators) -> str | None:
    """The first PID segment's text: found after a CR without splitting the whole message,
    else among the segments as the reader splits them (LF or CRLF line ends)."""
    head = f"PID{seps.field}"
    start = text.find(f"\r{head}")
    if start >= 0:
        stop = text.find("\r", start + 1)
        return text[start + 1 :] if stop < 0 else text[start + 1 : stop]
    return next((s for s in split_segments(text) if s.startswith(head)), None)


def _identifies(pipeline: _Staged) -> bool:
    return any(stage.name == "identify" for stage in pipeline.stages)
