"""Journaled payloads read back for the pipeline: the parse stage's input."""

from __future__ import annotations

from engine.cda.standalone import CdaPayload, read_standalone
from engine.errors import EncodingError
from engine.hl7v2.reader import Message
from engine.payload_kinds import XML_CHARSET, looks_like_xml


def journaled_payload(raw: bytes, charset: str) -> Message | CdaPayload:
    """A journaled payload read back: an HL7 v2 message, or a CDA document received alone
    (DocumentError when that is not safe XML)."""
    if is_xml(raw, charset):
        return read_standalone(raw)
    return journaled_message(raw, charset)


def is_xml(raw: bytes, charset: str) -> bool:
    """A CDA document received alone (journaled with the XML charset, or XML bytes)."""
    return charset == XML_CHARSET or looks_like_xml(raw)


def journaled_message(raw: bytes, charset: str) -> Message:
    """A journaled payload read back with the character set intake found for it; raises
    EncodingError or ParseError (both typed, both dead-letter reasons)."""
    try:
        text = raw.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise EncodingError(f"cannot decode with {charset}: {exc}") from exc
    return Message(text.lstrip("\ufeff"))
