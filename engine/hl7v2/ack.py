"""ACK and NAK messages, built structurally with the sender's own separators.

Every value written goes through :func:`escape`, so a reason quoting ``|`` or ``^`` cannot
shift the fields of the ACK (the anti-example is an ACK built by string concatenation).
Every value echoed from the sender's header is cut to its HL7 length first, so that an ACK
stays a few kilobytes whatever the header held (a 1 MB MSH-5 once made each ACK 1 MB); for a
conformant header it stays far below 4096 bytes, the single ``recv`` python-hl7's ``mllp_send``
reads.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from enum import StrEnum

from engine import errors
from engine.hl7v2 import ack_shapes
from engine.hl7v2.ack_msh import HD_LENGTHS, build_segment, msh_segment
from engine.hl7v2.msh import Header, fallback_header, read_header

__all__ = [
    "ENGINE_TO_HL7",
    "HD_LENGTHS",
    "HL7_ERRORS",
    "AckCode",
    "Header",
    "build_ack",
    "build_nak",
    "build_segment",
    "commit_code",
    "fallback_header",
    "hl7_error_code",
    "is_enhanced",
    "new_control_id",
    "read_header",
    "wants_ack",
]

# MSA-2 echoes MSH-10, ST(20) in v2.5; we keep v2.7's ST(199): senders numbering with UUIDs
# (36 characters) could not match a cut control id to their message.
CONTROL_ID_MAX = 199
MSA_TEXT_MAX = 80  # MSA-3 text message ST(80)
ERR_TEXT_MAX = 200  # ERR-8 user message is TX(250); 200 keeps a whole ACK under 4096 bytes
DEFAULT_VERSION = ack_shapes.DEFAULT_VERSION


class AckCode(StrEnum):
    """MSA-1 (HL7 table 0008): A* application codes, C* commit (enhanced mode) codes."""

    AA = "AA"
    AE = "AE"
    AR = "AR"
    CA = "CA"
    CE = "CE"
    CR = "CR"

    @property
    def ok(self) -> bool:
        return self in (AckCode.AA, AckCode.CA)

    @property
    def is_commit(self) -> bool:
        return self.value[0] == "C"


HL7_ERRORS: dict[str, str] = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
"""HL7 table 0357, message error condition codes, with their texts."""

ENGINE_TO_HL7: dict[str, str] = {
    # No 0357 code says "not HL7 at all"; a segment sequence error is the nearest.
    errors.ParseError.code: "100",
    errors.EncodingError.code: "102",
    errors.UnsupportedMessageType.code: "200",
    errors.ValidationError.code: "101",
    errors.UnknownPatient.code: "204",
    errors.FramingError.code: "207",
    errors.MessageTooLarge.code: "207",
    errors.TransformError.code: "207",
    errors.StoreUnavailable.code: "207",
    errors.DestinationUnavailable.code: "207",
    "control_id_reused": "205",  # records.NewMessage.reject_reused_control_id
}
"""Our error codes (``EngineError.code``) and the HL7 table 0357 code reported in ERR-3.

Anything not listed is 207 (application internal error); ERR-5 always carries our own code.
"""


def hl7_error_code(engine_code: str) -> str:
    """The table 0357 code for one of our error codes (207 when there is no better one)."""
    return ENGINE_TO_HL7.get(engine_code, "207")


_id_lock = threading.Lock()
_last_id = 0


def new_control_id() -> str:
    """A fresh MSH-10 for an ACK: ``ACK`` and a strictly increasing microsecond clock.

    Nineteen characters, within the 20 that MSH-10 allows before v2.7.
    """
    global _last_id
    with _id_lock:
        _last_id = max(_last_id + 1, time.time_ns() // 1000)
        return f"ACK{_last_id}"


def build_ack(
    msg_header: Header,
    code: AckCode,
    *,
    text: str = "",
    error_code: str = "",
    severity: str = "E",
    now: datetime | None = None,
    control_id: str | None = None,
    charset: str | None = None,
) -> str:
    """The ACK for a message, segments joined by CR, in the shape of the message's version
    (:mod:`engine.hl7v2.ack_shapes`).

    ``text`` is the human reason (MSA-3, cut to 80 characters, and ERR-8, cut to 200, with
    runs of white space, line breaks included, turned into one space);
    ``error_code`` is our machine code (an ``EngineError.code``), written in ERR-5 and mapped
    to HL7 table 0357 for ERR-3. The ERR segment is written for every code but AA and CA.
    ``charset`` is the MSH-18 of the ACK when it is not written in the message's own.
    """
    seps = msg_header.separators
    version = msg_header.version
    moment = now or datetime.now()
    text = " ".join(text.split())  # one line: a reason's line breaks help no ACK reader
    msa = ack_shapes.msa(
        version, code.value, msg_header.control_id[:CONTROL_ID_MAX], text[:MSA_TEXT_MAX]
    )
    segments = [
        msh_segment(msg_header, moment, control_id or new_control_id(), charset),
        build_segment("MSA", msa, seps),
    ]
    if not code.ok:
        hl7_code = hl7_error_code(error_code)
        err = ack_shapes.err(
            version, hl7_code, HL7_ERRORS[hl7_code], severity, error_code, text[:ERR_TEXT_MAX]
        )
        segments.append(build_segment("ERR", err, seps))
    return "\r".join(segments)


def build_nak(
    msg_header: Header,
    error: errors.EngineError,
    *,
    code: AckCode | None = None,
    now: datetime | None = None,
    control_id: str | None = None,
    charset: str | None = None,
) -> str:
    """The negative ACK for an engine error: its ``ack_code`` (or ``code``), code and reason."""
    return build_ack(
        msg_header,
        code or AckCode(error.ack_code),
        text=error.reason,
        error_code=error.code,
        now=now,
        control_id=control_id,
        charset=charset,
    )


def wants_ack(header: Header, code: AckCode) -> bool:
    """Whether the sender asked for this acknowledgment (MSH-15/MSH-16, HL7 table 0155).

    Original mode (both fields empty) always acknowledges. In enhanced mode, MSH-15 governs
    commit codes (CA/CE/CR) and MSH-16 application codes (AA/AE/AR): AL always, NE never,
    ER only on error, SU only on success. An empty or unknown value in enhanced mode counts
    as AL: answering too often is safer than leaving a sender without an answer.
    """
    if not is_enhanced(header):
        return True
    mode = header.accept_ack_type if code.is_commit else header.app_ack_type
    if mode == "NE":
        return False
    if mode == "ER":
        return not code.ok
    if mode == "SU":
        return code.ok
    return True


def is_enhanced(header: Header) -> bool:
    """Enhanced acknowledgment mode: the sender filled MSH-15 or MSH-16."""
    return bool(header.accept_ack_type or header.app_ack_type)


def commit_code(enhanced: bool, ok: bool, reject: bool) -> AckCode:
    """CA/CE/CR in enhanced mode, AA/AE/AR in original mode; ``reject`` picks R over E."""
    if ok:
        return AckCode.CA if enhanced else AckCode.AA
    if reject:
        return AckCode.CR if enhanced else AckCode.AR
    return AckCode.CE if enhanced else AckCode.AE
