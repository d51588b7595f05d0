"""A payload checked by the intake rules (:mod:`engine.intake.rules`), ready for the journal;
for an HL7 v2 batch, its messages (:mod:`engine.intake.batches`). Data only."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine.errors import EngineError
from engine.hl7v2.ack import is_enhanced
from engine.hl7v2.batch import Envelope
from engine.hl7v2.msh import APPLICATION_ACKS, Header
from engine.journal.records import NewMessage


@dataclass(slots=True)
class Prepared:
    """A payload checked and ready for the journal."""

    row: NewMessage
    header: Header
    codec: str
    error: EngineError | None
    #: False for an acknowledgment received: an ACK is never acknowledged (no NAK loops).
    answer: bool = True
    #: MSH-18 of the ACK when it is not written in the message's declared character set
    #: (undecodable bytes: their header is echoed as read, in ISO 8859-1 or ASCII).
    ack_charset: str | None = None
    #: When it was read (``time.monotonic``: one clock for every process of the machine), for
    #: the ACK latency histogram.
    read_at: float = field(default_factory=time.monotonic)
    #: A batch (FHS/BHS, or several messages): its messages (``engine.intake.batches``).
    batch: BatchParts | None = None

    @property
    def enhanced(self) -> bool:
        return is_enhanced(self.header)

    @property
    def application_only(self) -> bool:
        """MSH-15 NE with MSH-16 AL/ER/SU: the one answer is the application ACK, once the
        pipeline has decided."""
        header = self.header
        return header.accept_ack_type == "NE" and header.app_ack_type in APPLICATION_ACKS

    @property
    def application_after(self) -> bool:
        """MSH-15 asks for a commit ACK and MSH-16 for an application ACK: CA now, and the
        application ACK as a message of its own once the pipeline has decided."""
        header = self.header
        return header.accept_ack_type != "NE" and header.app_ack_type in APPLICATION_ACKS


@dataclass(slots=True)
class BatchParts:
    """What a batch payload became: its envelope (None when it could not be read) and, when
    valid, one prepared message per message of the batch."""

    envelope: Envelope | None
    batch_id: str
    messages: list[Prepared] = field(default_factory=list)
    #: For each message, the number of its batch (1-based) in the envelope.
    batch_of: list[int] = field(default_factory=list)

    @property
    def rows(self) -> list[NewMessage]:
        return [p.row for p in self.messages]
