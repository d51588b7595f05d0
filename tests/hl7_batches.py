"""The messages of an HL7 v2 batch, as the engine reads them (:func:`read_envelope`)."""

from __future__ import annotations

from engine.hl7v2.batch import read_envelope


def batch_messages(text: str) -> list[str]:
    """Each message of ``text`` from its MSH, segments joined by CR; ``[text]`` for a message
    that is no batch. ParseError for a structural fault."""
    return [message for batch in read_envelope(text).batches for message in batch.messages]
