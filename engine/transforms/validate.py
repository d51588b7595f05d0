"""Structural validation with hl7apy, for channels that ask for it (it costs 25-60 ms/message)."""

from __future__ import annotations

from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from engine.errors import ValidationError
from engine.hl7v2.reader import split_segments


def validate_structure(text: str, profile: str) -> None:
    """Raise :class:`ValidationError` unless hl7apy accepts the message's structure.

    ``hl7apy_tolerant`` checks the message structure of its version (required segments and
    groups); ``hl7apy_strict`` also checks datatypes and field values as it parses.
    """
    # hl7apy only splits on CR and silently drops the rest of an LF-separated message.
    normalised = "\r".join(split_segments(text))
    strict = profile == "hl7apy_strict"
    level = VALIDATION_LEVEL.STRICT if strict else VALIDATION_LEVEL.TOLERANT
    try:
        msg: Any = parse_message(normalised, validation_level=level, find_groups=True)
        msg.validate()
    except HL7apyException as exc:
        raise ValidationError(f"hl7apy: {exc}") from exc
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        # hl7apy reports some malformed input through plain Python exceptions.
        raise ValidationError(f"hl7apy could not read the message: {exc!r}") from exc
