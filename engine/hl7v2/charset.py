"""Character sets: from MSH-18 (HL7 table 0211) to Python codecs, on the hot path.

The bytes of a message are decoded once, with the character set the sender declares in MSH-18,
or a channel default when it declares none. MSH itself is ASCII in every character set we
accept, so MSH-18 is read from the bytes before anything is decoded.
"""

from __future__ import annotations

import codecs
from typing import Annotated

from pydantic import AfterValidator

from engine.errors import EncodingError

UTF8_BOM = b"\xef\xbb\xbf"

CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    # "UNICODE" is the pre-2.5 spelling; "UTF-8" is a common non-standard one.
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
}
"""MSH-18 values (upper case) and the Python codec each one means.

UTF-16 and UTF-32 are left out on purpose: they are not ASCII-compatible, so MSH could not be
read before decoding, and no sender in our field uses them over MLLP.
"""

_MSH18_INDEX = 17  # after splitting MSH on its field separator, MSH-n sits at index n - 1
_LEADING_BLANKS = b" \t\r\n"


def codec_name(value: str) -> str | None:
    """The Python codec for an MSH-18 value or a codec name, or ``None`` when unknown.

    Meant for validating a channel's default character set at load time. Only codecs that
    decode text and keep ASCII as ASCII are accepted, since MSH is read as ASCII.
    """
    key = value.strip()
    if key.upper() in CHARSETS:
        return CHARSETS[key.upper()]
    try:
        name = codecs.lookup(key).name
        ascii_compatible = "MSH|".encode(name) == b"MSH|" and b"".decode(name) == ""
    except (LookupError, ValueError):  # ValueError: a name holding a NUL (UnicodeError too)
        return None
    return name if ascii_compatible else None


def _known_charset(value: str) -> str:
    if codec_name(value) is None:
        known = ", ".join(sorted(CHARSETS))
        raise ValueError(f"unknown character set {value!r} (MSH-18 values: {known})")
    return value


DefaultCharset = Annotated[str, AfterValidator(_known_charset)]
"""A source's ``default_charset``: an MSH-18 value or an ASCII-compatible codec name, checked
when the configuration loads (not when the first message without MSH-18 arrives)."""


def _header_start(raw: bytes) -> int:
    """Offset of the first segment: after a UTF-8 BOM and any leading blank lines."""
    start = 3 if raw.startswith(UTF8_BOM) else 0
    # Bounded by the blank prefix, which is a few bytes at most in practice.
    while start < len(raw) and raw[start] in _LEADING_BLANKS:
        start += 1
    return start


def _line_end(raw: bytes, start: int) -> int:
    cr = raw.find(b"\r", start)
    end = len(raw) if cr == -1 else cr
    lf = raw.find(b"\n", start, end)  # bounded: never scans past the first CR
    return end if lf == -1 else lf


def _msh_start(raw: bytes) -> int:
    """Offset of the first MSH segment (a batch starts with FHS/BHS, which have no MSH-18)."""
    start = _header_start(raw)
    if raw.startswith(b"MSH", start):
        return start
    if not raw.startswith((b"FHS", b"BHS"), start):
        return -1
    found = [i for i in (raw.find(b"\rMSH", start), raw.find(b"\nMSH", start)) if i != -1]
    return min(found) + 1 if found else -1


def header_charset(raw: bytes) -> str:
    """MSH-18 (its first repetition, stripped) read from the raw bytes; ``""`` when absent."""
    start = _msh_start(raw)
    if start == -1:
        return ""
    line = raw[start : _line_end(raw, start)]
    if len(line) < 8:  # "MSH" alone, or cut before MSH-2: no separator to split on
        return ""
    fields = line.split(line[3:4])
    if len(fields) <= _MSH18_INDEX:
        return ""
    value = fields[_MSH18_INDEX]
    # MSH-18 may repeat: the first repetition is the character set of the message itself.
    repetition = line[5:6]
    if repetition:
        value = value.split(repetition, 1)[0]
    # latin-1 maps every byte, so a garbled MSH-18 shows up as an unknown name, not a crash.
    return value.decode("latin-1").strip()


def decode(raw: bytes, default: str) -> tuple[str, str]:
    """Decode a message; returns ``(text, codec)``.

    The character set is MSH-18 when present. Otherwise it is UTF-8 when the bytes start with
    a UTF-8 BOM (the BOM says so more reliably than a configured default), else ``default``
    (an MSH-18 value or a codec name). The BOM is never part of the text.

    Raises :class:`EncodingError` when MSH-18 is unknown or the bytes are invalid in the
    chosen character set; raises ``ValueError`` when ``default`` is unknown (a configuration
    mistake that channel validation should have caught).
    """
    declared = header_charset(raw)
    has_bom = raw.startswith(UTF8_BOM)
    if declared:
        codec = CHARSETS.get(declared.upper())
        if codec is None:
            known = ", ".join(sorted(k for k in CHARSETS if k != "UTF-8"))
            raise EncodingError(f"unknown character set in MSH-18: {declared!r} (known: {known})")
        source = f"MSH-18 {declared!r}"
    else:
        resolved = "utf-8" if has_bom else codec_name(default)
        if resolved is None:
            raise ValueError(f"unknown default character set {default!r}")
        codec = resolved
        source = "UTF-8 byte order mark" if has_bom else f"no MSH-18, default {default!r}"
    skip = len(UTF8_BOM) if has_bom else 0
    try:
        # str() of a memoryview decodes in place: no copy of a large message to drop the BOM.
        text = str(memoryview(raw)[skip:], codec)
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        raise EncodingError(
            f"bytes are not valid {_label(codec)} ({source}): byte 0x{raw[offset]:02X} "
            f"at offset {offset}"
        ) from None
    return text, codec


def _label(codec: str) -> str:
    labels = {"utf-8": "UTF-8", "ascii": "ASCII", "latin-1": "ISO 8859-1"}
    if codec in labels:
        return labels[codec]
    if codec.startswith("iso8859-"):
        return f"ISO 8859-{codec[8:]}"
    return codec


def encode(text: str, codec: str) -> bytes:
    """Encode message text strictly; raises :class:`EncodingError` if a character does not fit.

    Data must never be altered silently, so there is no lossy mode here: see
    :func:`encode_ack` for the one place where replacing a character is acceptable.
    """
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        raise EncodingError(
            f"character {exc.object[exc.start]!r} at offset {exc.start} cannot be written "
            f"in {_label(codec)}"
        ) from None


def encode_ack(text: str, codec: str) -> bytes:
    """Encode an ACK in the message's own character set, replacing what does not fit by "?".

    An ACK echoes header fields that came from the message (so they always fit its character
    set) plus our human reason. Only that reason can hold a character the sender's set lacks
    (an accented word in an ASCII channel, say), and a "?" there is better than no ACK at all:
    contract 7 wants every message answered. "?" is no HL7 delimiter, so nothing breaks.
    """
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        return text.encode(codec, errors="replace")
