"""The acknowledgement of an HL7 v2 batch: a batch itself (HL7 v2.5 §2.10.3).

``[FHS] BHS {MSH MSA [ERR]} BTS [FTS]``: a file header when the batch came in a file, one
batch header per batch received (BHS-12 naming the batch it answers, FHS-12 the file), one
ACK per message in the order received, BTS-1 the number of ACKs in the batch and FTS-1 the
number of batches. Designators are swapped as in an ACK: we answer as the application the
batch addressed. Values are escaped and cut to their HL7 lengths as in :mod:`ack`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from engine.errors import ParseError
from engine.hl7v2.ack import CONTROL_ID_MAX, HD_LENGTHS, MSA_TEXT_MAX, build_segment
from engine.hl7v2.ack_shapes import Component, Value
from engine.hl7v2.msh import Header, read_header
from engine.hl7v2.separators import Separators


@dataclass(frozen=True, slots=True)
class AnsweredBatch:
    """One batch of the answer: the header line it answers (a BHS, else the MSH of its first
    message, else None), the control id it had (BHS-11) and the ACKs of its messages."""

    answers: str | None
    control_id: str
    acks: Sequence[str]
    comment: str = ""


def build_batch_ack(
    seps: Separators,
    file_header: str | None,
    file_control_id: str,
    batches: Sequence[AnsweredBatch],
    control_id: str,
    now: datetime | None = None,
) -> str:
    """The answer to a batch, segments joined by CR. ``control_id`` is the answer's own
    (FHS-11; each BHS-11 adds ``.<batch number>``)."""
    moment = (now or datetime.now()).strftime("%Y%m%d%H%M%S")
    segments: list[str] = []
    if file_header is not None:
        fields = _header_fields(file_header, moment, control_id, file_control_id)
        segments.append(build_segment("FHS", fields, seps))
    for number, batch in enumerate(batches, start=1):
        own = f"{control_id}.{number}"
        fields = _header_fields(batch.answers, moment, own, batch.control_id)
        segments.append(build_segment("BHS", fields, seps))
        segments.extend(batch.acks)
        trailer: list[Value] = [str(len(batch.acks)), batch.comment[:MSA_TEXT_MAX]]
        segments.append(build_segment("BTS", trailer, seps))
    if file_header is not None:
        segments.append(build_segment("FTS", [str(len(batches))], seps))
    return "\r".join(segments)


def _header_fields(
    answered: str | None, moment: str, control_id: str, reference: str
) -> list[Value]:
    """FHS/BHS-3 to -12 answering the header (or first MSH) ``answered``."""
    header = _read(answered)
    return [
        _hd(header.receiving_app),  # -3: we answer as the application it addressed
        _hd(header.receiving_facility),
        _hd(header.sending_app),
        _hd(header.sending_facility),
        moment,  # -7
        "",
        "",
        "",
        control_id[:CONTROL_ID_MAX],  # -11: this answer's batch (file) control id
        reference[:CONTROL_ID_MAX],  # -12: the batch (file) it answers
    ]


def _read(line: str | None) -> Header:
    if line is None:
        return Header()
    try:
        return read_header("MSH" + line[3:])  # FHS/BHS-3 to -11 sit where MSH's do
    except ParseError:  # an answer is written whatever the header held
        return Header()


def _hd(value: str) -> list[Component]:
    parts = value.split("^", len(HD_LENGTHS))[: len(HD_LENGTHS)]
    return [part[:size] for part, size in zip(parts, HD_LENGTHS, strict=False)]
