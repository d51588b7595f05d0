"""What the journal stores and answers: new messages, append results, pending messages."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.channels.duplicates import DEFAULT_POLICY, DuplicatePolicy
from engine.journal.message_tables import State
from engine.payload_kinds import CDA_TYPE, looks_like_xml

DedupKey = tuple[str, str | None, str | None, str, str]
#: Where MSH may start: after a UTF-8 BOM and a few blanks, as intake accepts.
_MSH_WITHIN = 16
_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


def content_digest(raw: bytes) -> str:
    """SHA-256 of a message from its MSH (a BOM or blanks before it left out) with MSH-7
    (date/time of message) blanked; of the whole payload when it is not HL7 v2 (a CDA
    document received alone)."""
    start = -1 if looks_like_xml(raw) else raw.find(b"MSH", 0, _MSH_WITHIN)
    if start < 0:
        return hashlib.sha256(raw).hexdigest()
    raw = raw[start:]
    end = min((i for i in (raw.find(b"\r"), raw.find(b"\n")) if i >= 0), default=len(raw))
    fields = raw[:end].split(raw[3:4] or b"|")
    if len(fields) > 6:
        fields[6] = b""  # MSH-7: fields[0] is "MSH", fields[1] MSH-2
    return hashlib.sha256((raw[3:4] or b"|").join(fields) + raw[end:]).hexdigest()


def normalised_digest(raw: bytes) -> str:
    """SHA-256 of a message as a resend may differ from it and still be the same message:
    segments split on CR, LF or CRLF, trailing blanks and blank lines dropped, batch envelope
    segments (FHS, BHS, BTS, FTS) dropped, MSH-7 blanked; :func:`content_digest` for a
    payload that is not HL7 v2."""
    start = -1 if looks_like_xml(raw) else _hl7_start(raw)
    if start < 0:
        return content_digest(raw)
    body = raw[start:]
    if b"\n" in body:
        body = body.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    # List comprehensions and one hash of the joined segments: a few microseconds for a
    # 1.5 KB message (a third less than one update per segment).
    stripped = [segment.rstrip(b" \t") for segment in body.split(b"\r")]
    kept = [segment for segment in stripped if segment and segment[:3] not in _ENVELOPE]
    for i, segment in enumerate(kept):
        if segment[:3] == b"MSH":
            kept[i] = _blank_msh7(segment)
    return hashlib.sha256(b"\r".join(kept)).hexdigest()


def _blank_msh7(segment: bytes) -> bytes:
    separator = segment[3:4] or b"|"
    fields = segment.split(separator, 7)
    if len(fields) > 6:
        fields[6] = b""
    return separator.join(fields)


def _hl7_start(raw: bytes) -> int:
    found = [i for i in (raw.find(n, 0, _MSH_WITHIN) for n in (b"MSH", b"FHS", b"BHS")) if i >= 0]
    return min(found, default=-1)


@dataclass(slots=True)
class NewMessage:
    """A message as intake hands it to the journal."""

    channel: str
    raw: bytes
    peer: str = ""
    #: The sender identity the source established (certificate subject, token name, or the
    #: channel with MSH-3/MSH-4 for plain MLLP); empty when the source proves none.
    sender: str = ""
    charset: str = ""
    sender_app: str | None = None
    sender_facility: str | None = None
    control_id: str | None = None
    message_type: str | None = None
    trigger: str | None = None
    patient_key: str | None = None
    state: State = State.RECEIVED
    ack_code: str = "AA"
    error_stage: str | None = None
    error_code: str | None = None
    error_class: str | None = None
    error_reason: str | None = None
    #: Transport metadata as JSON (AMQP properties), kept with the message.
    properties: str | None = None
    #: The HL7 v2 batch the message came in, and its position there (1-based).
    batch_id: str | None = None
    batch_position: int | None = None
    #: The channel's duplicate policy (how a resend is told from a control id reused).
    duplicates: DuplicatePolicy = DEFAULT_POLICY

    def dedup_key(self) -> DedupKey | None:
        """Channel, sender, MSH-10 (contract 3) and a digest of the content but MSH-7
        (normalised, unless the channel's policy says otherwise).

        A resend repeats the first four (senders often stamp a new MSH-7 when they resend);
        a different content under the same four is a control id reused, not a resend.
        """
        if not self.control_id:
            return None
        raw = self.raw
        digest = normalised_digest(raw) if self.duplicates.normalise else content_digest(raw)
        return (self.channel, self.sender_app, self.sender_facility, self.control_id, digest)

    def same_content(self, key: DedupKey, stored_digest: str) -> bool:
        """Whether a journaled message's digest is this message's: the digest of ``key``, or
        (rows journaled before the normalised digest, or under another policy) the exact
        digest."""
        return stored_digest == key[4] or stored_digest == content_digest(self.raw)

    def reused_is_new(self, last_used: datetime | None, now: datetime) -> bool:
        """Whether this message, whose control id was last used for another content at
        ``last_used`` (None: in the same batch), is taken as a new message by the policy."""
        policy = self.duplicates
        if policy.on_reuse == "accept_as_new":
            return True
        window = policy.reuse_window_seconds
        return (
            window is not None
            and last_used is not None
            and now - last_used > timedelta(seconds=window)
        )

    def reject_reused_control_id(self, original: int | None) -> None:
        """Keep this message as a dead letter: its sender reused a control id."""
        self.state = State.DEAD_LETTERED
        self.ack_code = "AR"
        self.error_stage = "intake"
        self.error_code = "control_id_reused"
        self.error_class = "ControlIdReused"
        what = "document id" if self.message_type == CDA_TYPE else "MSH-10"
        self.error_reason = (
            f"{what} {self.control_id!r} was already used by this sender "
            f"(message {original if original is not None else 'in the same batch'}) for a "
            "different content; kept as a dead letter for review"
        )


@dataclass(frozen=True, slots=True)
class Appended:
    """The journal's answer for one message; a duplicate carries the original's outcome."""

    id: int
    duplicate: bool
    ack_code: str
    error_code: str | None = None
    error_reason: str | None = None


@dataclass(slots=True)
class Pending:
    """A message the pipeline has to (re)process."""

    id: int
    channel: str
    raw: bytes
    charset: str
    patient_key: str | None
    attempts: int
    delivered_to: set[str] = field(default_factory=set)
    #: The state this attempt ended in, once :meth:`Journal.finish` recorded it.
    outcome: State | None = None
    #: The sender identity journaled with it, when the claim read it (else read on delivery).
    sender: str | None = None
