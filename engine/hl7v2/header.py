"""The MSH fields an ACK and the journal need, read from the first line only.

Reading the header must stay cheap even for an 800 KB message carrying base64 documents, so
:func:`read_header` looks at the first segment and never splits the rest of the text.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ParseError
from engine.hl7v2.escape import unescape
from engine.hl7v2.separators import DEFAULT, Separators

_LEADING_BLANKS = " \t\r\n\ufeff"


@dataclass(frozen=True, slots=True)
class Header:
    """MSH fields of one message, unescaped.

    The hierarchic designators (MSH-3 to MSH-6) keep all their components, joined by ``^``
    whatever the message's own component separator is, so that ``"APP^1.2.3^ISO"`` can be
    echoed whole in an ACK. The other fields keep their first component only: MSH-11 is the
    processing id (``P``, ``T``, ``D``), MSH-12 the version id (``2.5`` of ``2.5^FRA^2.11``),
    MSH-18 the first repetition (the character set of the message itself).
    """

    separators: Separators = DEFAULT
    sending_app: str = ""
    sending_facility: str = ""
    receiving_app: str = ""
    receiving_facility: str = ""
    message_type: str = ""
    trigger: str = ""
    control_id: str = ""
    processing_id: str = ""
    version: str = ""
    accept_ack_type: str = ""
    app_ack_type: str = ""
    charset: str = ""


def fallback_header() -> Header:
    """A header for a message whose MSH cannot be read, so that it can still be NAKed."""
    return Header()


def first_line(text: str) -> str:
    """The first segment of ``text`` (after leading blanks), without its terminator."""
    start = 0
    # Bounded by the blank prefix, a few characters at most.
    while start < len(text) and text[start] in _LEADING_BLANKS:
        start += 1
    cr = text.find("\r", start)
    end = len(text) if cr == -1 else cr
    lf = text.find("\n", start, end)  # bounded: never scans past the first CR
    return text[start : end if lf == -1 else lf]


def read_header(text: str) -> Header:
    """Read the MSH segment at the start of ``text``; raises :class:`ParseError` without one."""
    line = first_line(text)
    if line[:3] != "MSH":
        raise ParseError(f"message does not start with an MSH segment (found {line[:3]!r})")
    seps = Separators.from_header(line)
    fields = line.split(seps.field)

    def raw(number: int) -> str:
        # fields[0] is "MSH" and fields[1] is MSH-2, so MSH-n sits at index n - 1.
        return fields[number - 1] if number - 1 < len(fields) else ""

    def first(number: int) -> str:
        value = raw(number).split(seps.repetition, 1)[0].split(seps.component, 1)[0]
        return unescape(value, seps).strip()

    def designator(number: int) -> str:
        value = raw(number).split(seps.repetition, 1)[0]
        return "^".join(unescape(c, seps) for c in value.split(seps.component))

    msg_type = raw(9).split(seps.repetition, 1)[0].split(seps.component)
    return Header(
        separators=seps,
        sending_app=designator(3),
        sending_facility=designator(4),
        receiving_app=designator(5),
        receiving_facility=designator(6),
        message_type=unescape(msg_type[0], seps),
        trigger=unescape(msg_type[1], seps) if len(msg_type) > 1 else "",
        control_id=unescape(raw(10), seps),
        processing_id=first(11),
        version=first(12),
        accept_ack_type=first(15).upper(),
        app_ack_type=first(16).upper(),
        charset=first(18),
    )
