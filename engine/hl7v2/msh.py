"""The MSH fields an ACK and the journal need, read from the first line only.

Reading the header must stay cheap even for an 800 KB message carrying base64 documents, so
:func:`read_header` looks at the first segment and never splits the rest of the text.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ParseError
from engine.hl7v2.charset import CHARSETS
from engine.hl7v2.escape import unescape
from engine.hl7v2.separators import DEFAULT, Separators

_LEADING_BLANKS = " \t\r\n\ufeff"
#: MSH-16 values asking for an application acknowledgment (HL7 table 0155).
APPLICATION_ACKS = frozenset({"AL", "ER", "SU"})


@dataclass(frozen=True, slots=True)
class Header:
    """MSH fields of one message, unescaped.

    The hierarchic designators (MSH-3 to MSH-6) keep all their components, joined by ``^``
    whatever the message's own component separator is, so that ``"APP^1.2.3^ISO"`` can be
    echoed whole in an ACK. The other fields keep their first component only: MSH-11 is the
    processing id (``P``, ``T``, ``D``), MSH-12 the version id (``2.5`` of ``2.5^FRA^2.11``),
    MSH-18 the first repetition (the character set of the message itself). ``version_id`` is
    MSH-12 whole, components joined by ``^``, to be echoed whole in an ACK.
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
    version_id: str = ""


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
    # fields[0] is "MSH" and fields[1] is MSH-2, so MSH-n sits at index n - 1; padded to
    # MSH-18 so that every field below can be indexed.
    if len(fields) < 18:
        fields += [""] * (18 - len(fields))
    repetition, component = seps.repetition, seps.component
    # Most headers hold no escape sequence past MSH-2 (which holds the escape character
    # itself): their fields are read as they are, without a call to unescape each.
    escaped = seps.escape in line[4 + len(fields[1]) :]

    def text_of(value: str) -> str:
        return unescape(value, seps) if escaped else value

    def first(number: int) -> str:
        return text_of(fields[number - 1].split(repetition, 1)[0].split(component, 1)[0]).strip()

    def designator(number: int) -> str:
        value = fields[number - 1].split(repetition, 1)[0]
        if not escaped:
            return value if component == "^" else value.replace(component, "^")
        return "^".join(unescape(c, seps) for c in value.split(component))

    msg_type = fields[8].split(repetition, 1)[0].split(component)
    return Header(
        separators=seps,
        sending_app=designator(3),
        sending_facility=designator(4),
        receiving_app=designator(5),
        receiving_facility=designator(6),
        message_type=text_of(msg_type[0]),
        trigger=text_of(msg_type[1]) if len(msg_type) > 1 else "",
        control_id=text_of(fields[9]),
        processing_id=first(11),
        version=first(12),
        accept_ack_type=first(15).upper(),
        app_ack_type=first(16).upper(),
        charset=first(18),
        version_id=designator(12),
    )


def read_batch_header(text: str) -> Header:
    """The header of a batch: the designators (FHS/BHS-3 to -6) and control id (FHS/BHS-11)
    of its first line, with the version, acknowledgment types and character set of its first
    message (when one can be read). Raises :class:`ParseError` when the first line is neither
    FHS nor BHS."""
    line = first_line(text)
    if line[:3] not in ("FHS", "BHS"):
        raise ParseError(f"batch does not start with FHS or BHS (found {line[:3]!r})")
    as_msh = read_header("MSH" + line[3:])  # the same field positions up to 11
    segments = text.replace("\n", "\r").split("\r")
    first_msh = next((s for s in segments if s[:3] == "MSH"), "")
    cut = segments.index(first_msh) if first_msh else len(segments)
    envelope = [s for s in segments[:cut] if s[:3] in ("FHS", "BHS")]
    try:
        inner = read_header(first_msh)
    except ParseError:
        inner = Header()
    return Header(
        separators=as_msh.separators,
        sending_app=as_msh.sending_app,
        sending_facility=as_msh.sending_facility,
        receiving_app=as_msh.receiving_app,
        receiving_facility=as_msh.receiving_facility,
        control_id=_batch_control_id(envelope, as_msh.separators),
        processing_id=inner.processing_id,
        version=inner.version,
        accept_ack_type=inner.accept_ack_type,
        app_ack_type=inner.app_ack_type,
        charset=inner.charset,
        version_id=inner.version_id,
    )


def _batch_control_id(envelope: list[str], seps: Separators) -> str:
    """FHS-11 (file control id), else BHS-11 (batch control id)."""
    for line in envelope:
        fields = line.split(seps.field)
        # FHS-11 / BHS-11 sits at index 10, as MSH-11 would.
        if len(fields) > 10 and fields[10]:
            return unescape(fields[10], seps)
    return ""


def read_undecodable(payload: bytes) -> tuple[Header, str, str | None]:
    """Read MSH even from undecodable bytes, so that the NAK can name MSH-10: the header (as
    ISO 8859-1, which maps every byte), the codec of the NAK and its MSH-18.

    The NAK echoes the header's bytes as they came (written in ISO 8859-1, and saying so in
    MSH-18) when they are not ASCII, so that the sender finds its own MSH-10 there; else it is
    ASCII, and says so when the message declared another character set."""
    try:
        header = read_header(payload.decode("latin-1"))
    except ParseError:
        return fallback_header(), "ascii", None
    if not _fits_ascii(header):
        return header, "latin-1", "8859/1"
    declared = CHARSETS.get(header.charset.upper())
    return header, "ascii", None if declared == "ascii" or not header.charset else "ASCII"


def _fits_ascii(header: Header) -> bool:
    seps = header.separators
    echoed = (
        header.control_id,
        header.sending_app,
        header.sending_facility,
        header.receiving_app,
        header.receiving_facility,
        header.trigger,
        header.processing_id,
        header.version_id,
        seps.field + seps.encoding_characters,
    )
    return all(value.isascii() for value in echoed)


def asks_application_ack(raw: bytes) -> bool:
    """Whether a journaled payload's MSH-16 asks for an application acknowledgment (AL, ER,
    SU), read from its bytes without decoding them. True when an HL7 v2 header cannot be read
    that way (a character set that is not ASCII-compatible): the cautious answer. False for a
    payload that is not HL7 v2 (a CDA document alone)."""
    start = raw.find(b"MSH", 0, 16)
    if start < 0:
        return raw.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] != b"<"
    separator = raw[start + 3 : start + 4]
    if not separator:
        return False
    line = raw[start:]
    for terminator in (b"\r", b"\n"):
        line = line.split(terminator, 1)[0]
    fields = line.split(separator)
    if len(fields) <= 15:
        return False
    component = fields[1][:1] or b"^"
    value = fields[15].split(component, 1)[0].strip().upper()
    return value.decode("latin-1") in APPLICATION_ACKS
