"""Intake: turn one received payload into a journal row and, once it is durable, an ACK.

The checks here are the ones a sender must hear about in its ACK: character set, MSH, segment
structure, accepted message type, and that the CDA documents a message carries are safe XML;
for a CDA document received alone (:class:`DocumentIntake`), safe XML with a ClinicalDocument
root and an id, an accepted type, one patient. A payload failing them is still journaled (as a
dead letter, original bytes kept) before the NAK leaves. Everything else happens later in the
pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.cda.intake import check_carried_documents
from engine.cda.standalone import CDA_TYPE, XML_CHARSET, CdaPayload, read_standalone
from engine.channels.conditions import type_matches
from engine.errors import ACK_CODES, EngineError, ParseError, UnsupportedMessageType
from engine.hl7v2.ack import AckCode, build_ack, commit_code, is_enhanced, wants_ack
from engine.hl7v2.batch import is_batch
from engine.hl7v2.charset import decode, encode_ack
from engine.hl7v2.header import Header, fallback_header, read_header
from engine.hl7v2.reader import Message
from engine.journal.models import State
from engine.journal.records import Appended, NewMessage
from engine.routes.outcomes import EndState
from engine.transforms.patient_key import patient_key

#: End states an ACK after processing reports as ``AA``.
_APPLIED = frozenset({State.DELIVERED, State.FILTERED})
#: Message types that may carry CDA documents (checked before the ACK).
_DOCUMENT_CARRIERS = frozenset({"MDM", "ORU"})

if TYPE_CHECKING:
    from engine.channels.models import ChannelConfig


@dataclass(slots=True)
class Prepared:
    """A payload checked and ready for the journal."""

    row: NewMessage
    header: Header
    codec: str
    error: EngineError | None

    @property
    def enhanced(self) -> bool:
        return is_enhanced(self.header)


class Intake:
    """Per-channel intake rules (pure: no I/O, testable without sockets)."""

    def __init__(
        self,
        channel: str,
        accept: tuple[str, ...],
        default_charset: str,
        always_ack: bool = True,
    ) -> None:
        self.channel = channel
        self.accept = accept
        self.default_charset = default_charset
        self.always_ack = always_ack

    @staticmethod
    def for_channel(channel: ChannelConfig) -> Intake:
        """The intake rules for what the channel's source receives: HL7 v2 messages, or CDA
        documents alone (``payload: cda``)."""
        src = channel.source
        kind = DocumentIntake if src.payload == "cda" else Intake
        return kind(channel.name, channel.accept, src.default_charset, src.always_ack)

    def prepare(self, payload: bytes, peer: str = "", sender: str = "") -> Prepared:
        """Check ``payload`` for the journal. ``sender`` is the identity the source proved
        (``cert:<subject>``, ``token:<name>``); without one, the message is attributed to what
        it declares: the channel with MSH-3^MSH-4 (a document: the channel alone)."""
        row = NewMessage(channel=self.channel, raw=payload, peer=peer, sender=sender)
        header = fallback_header()
        codec = "ascii"
        try:
            text, codec = decode(payload, self.default_charset)
            row.charset = codec
            if is_batch(text):
                raise ParseError(
                    "HL7 batches (FHS/BHS) are not accepted: send one message per frame"
                )
            header = read_header(text)
            _fill_header(row, header)
            if not header.message_type:
                raise ParseError("MSH-9 (message type) is empty")
            kind = f"{header.message_type}^{header.trigger}"
            if not type_matches(kind, self.accept):
                raise UnsupportedMessageType(
                    f"channel {self.channel!r} does not accept {kind} messages"
                )
            msg = Message(text)
            row.patient_key = patient_key(msg)
            if header.message_type in _DOCUMENT_CARRIERS:
                check_carried_documents(msg)
        except EngineError as exc:
            return self._reject(row, header, codec, exc)
        row.ack_code = AckCode.AA
        return Prepared(row, header, codec, None)

    def prepare_rejected(
        self, payload: bytes, peer: str, error: EngineError, sender: str = ""
    ) -> Prepared:
        """A payload refused before it could be read (e.g. oversized), kept as a dead letter."""
        row = NewMessage(channel=self.channel, raw=payload, peer=peer, sender=sender)
        return self._reject(row, fallback_header(), "ascii", error)

    def prepare_poisoned(
        self, payload: bytes, peer: str, error: EngineError, sender: str = ""
    ) -> Prepared:
        """A payload a broker gave up on after its delivery limit, kept as a dead letter for
        ``error``. It is read like any other first, so that it keeps its control id and a
        message journaled before (a crash after the commit) is recognised as a resend."""
        try:
            prepared = self.prepare(payload, peer, sender)
        except Exception:  # what made it poison: read nothing more from it
            return self.prepare_rejected(payload, peer, error, sender)
        if prepared.error is not None:
            return prepared  # a dead letter for its own reason already
        return self._reject(prepared.row, prepared.header, prepared.codec, error)

    def _reject(self, row: NewMessage, header: Header, codec: str, exc: EngineError) -> Prepared:
        if not header.control_id:
            header = _best_effort_header(row.raw, header)
            _fill_header(row, header)
        if not row.sender:
            row.sender = self.channel
        # The refusal is kept (Prepared.error), its traceback is not: the frames it holds
        # would keep the parsed payload (a 15 MB tree) alive in a cycle until a full collection.
        exc.__traceback__ = None
        exc.__context__ = exc.__cause__ = None
        row.state = State.DEAD_LETTERED
        row.ack_code = exc.ack_code
        row.error_stage = "intake"
        row.error_code = exc.code
        row.error_class = type(exc).__name__
        row.error_reason = exc.reason
        return Prepared(row, header, codec, exc)

    def ack(
        self,
        prepared: Prepared,
        appended: Appended | None,
        failure: EngineError | None,
        processed: EndState | None = None,
    ) -> bytes | None:
        """The ACK bytes to send, or ``None`` when the sender's MSH-15 asked for none.

        With ``processed`` (a source answering after processing), an accepted message's ACK
        says what the pipeline made of it: ``AR`` for a permanent refusal (a dead letter),
        ``AE`` for a message kept for identity review or waiting for its patient."""
        if failure is not None:
            ok, reject, text, err_code = False, False, failure.reason, failure.code
        elif appended is not None:
            # For a resend, the original's outcome: the same ACK as the first time.
            original = AckCode(appended.ack_code)
            ok = original is AckCode.AA
            reject = original is AckCode.AR
            text, err_code = appended.error_reason or "", appended.error_code or ""
            if ok and processed is not None and processed.state not in _APPLIED:
                ok, text, err_code = False, processed.reason, processed.code
                reject = ACK_CODES.get(err_code) == "AR" or processed.state is State.DISCARDED
        else:
            raise ValueError("an ACK needs the journal result or the failure")
        code = commit_code(prepared.enhanced, ok, reject)
        if prepared.enhanced and not self.always_ack and not wants_ack(prepared.header, code):
            return None
        ack = build_ack(prepared.header, code, text=text, error_code=err_code)
        return encode_ack(ack, prepared.codec)


class DocumentIntake(Intake):
    """Intake rules for a channel whose source receives CDA documents alone. Over MLLP the
    answer is still an HL7 ACK, whose MSA-2 is the document id."""

    def prepare(self, payload: bytes, peer: str = "", sender: str = "") -> Prepared:
        row = NewMessage(
            channel=self.channel,
            raw=payload,
            peer=peer,
            sender=sender or self.channel,
            charset=XML_CHARSET,
        )
        header = fallback_header()
        try:
            doc = read_standalone(payload)
            header = Header(control_id=doc.header.document_id)
            row.control_id = doc.header.document_id
            row.message_type = CDA_TYPE
            row.trigger = doc.header.type_code or None
            kind = f"{CDA_TYPE}^{doc.header.type_code}"
            if not type_matches(kind, self.accept):
                raise UnsupportedMessageType(
                    f"channel {self.channel!r} does not accept {kind} documents"
                )
            row.patient_key = document_patient_key(doc)
        except EngineError as exc:
            return self._reject(row, header, "ascii", exc)
        row.ack_code = AckCode.AA
        return Prepared(row, header, "ascii", None)


def document_patient_key(doc: CdaPayload) -> str | None:
    """``value^OID`` of the recordTarget's first local identifier (the IPP), like the PID-3
    key of a message, else of its INS; None without either. ParseError when it names no single
    patient."""
    identity = doc.identity()
    if identity.local_ids:
        local = identity.local_ids[0]
        return f"{local.value}^{local.authority_oid}"
    ins = identity.preferred_ins  # INS only (vaccination, imaging...): the INS orders them
    return f"{ins.value}^{ins.oid}" if ins is not None else None


def _fill_header(row: NewMessage, header: Header) -> None:
    if not row.sender:
        row.sender = declared_sender(row.channel, header)
    row.sender_app = header.sending_app
    row.sender_facility = header.sending_facility
    row.control_id = header.control_id or None
    row.message_type = header.message_type or None  # the journal cuts what its columns cannot
    row.trigger = header.trigger or None


def declared_sender(channel: str, header: Header) -> str:
    """The identity of a sender that proved none: the channel it reached and the MSH-3^MSH-4
    it declares (spoofable; TLS client certificates or tokens are the proof)."""
    return f"{channel}:{header.sending_app}^{header.sending_facility}"


def _best_effort_header(payload: bytes, current: Header) -> Header:
    """Read MSH even from undecodable bytes, so that the NAK can name MSH-10."""
    try:
        return read_header(payload.decode("latin-1"))
    except EngineError:
        return current
