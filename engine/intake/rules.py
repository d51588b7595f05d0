"""Intake rules: turn one received payload into a journal row, and a journal result into an ACK.

The checks here are the ones a sender must hear about in its ACK: character set, MSH, segment
structure, accepted message type, and that the CDA documents a message carries pass the cheap
screen of :mod:`engine.cda.screen` (valid Base64, XML with a ClinicalDocument root, no DOCTYPE,
within the size and depth limits: what could hurt the engine); for a CDA document received
alone (:class:`DocumentRules`), the same screen over its prolog and header, an id, an accepted
type, one patient. A payload failing them is still journaled (as a dead letter, original bytes
kept) before the NAK leaves. Everything else happens later in the pipeline, where each document
is decoded and parsed once: a CDA that is not well-formed, fails its schema or the CI-SIS
rules becomes a dead letter there (its ACK says ``AR`` when the source answers after
processing).

The rules are pure (no I/O, picklable: large payloads are checked in a worker process); the
:class:`engine.intake.inbox.Inbox` applies them, journals and answers.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.cda.safety import check_carried_documents
from engine.cda.standalone import CdaPayload, read_document_header
from engine.channels.duplicates import DEFAULT_POLICY, DuplicatePolicy
from engine.errors import ACK_CODES, EngineError, ParseError, UnsupportedMessageType
from engine.hl7v2.ack import AckCode, build_ack, commit_code, wants_ack
from engine.hl7v2.batch import holds_several, is_batch
from engine.hl7v2.charset import decode, encode_ack
from engine.hl7v2.msh import (
    Header,
    fallback_header,
    read_batch_header,
    read_header,
    read_undecodable,
)
from engine.hl7v2.reader import Message
from engine.intake.outcomes import EndState
from engine.intake.prepared import Prepared
from engine.journal.message_tables import State
from engine.journal.records import Appended, NewMessage
from engine.payload_kinds import CDA_TYPE, XML_CHARSET
from engine.routes.conditions import type_matches
from engine.transforms.patient_key import patient_key

#: End states an ACK after processing reports as ``AA``.
_APPLIED = frozenset({State.DELIVERED, State.FILTERED})
#: Message types that may carry CDA documents (checked before the ACK).
_DOCUMENT_CARRIERS = frozenset({"MDM", "ORU"})


#: Reads a whole HL7 v2 batch (:func:`engine.intake.batches.prepare_batch`): the rules, the
#: payload's row, its decoded text and character set. Given to the rules of a channel taking
#: batches (``batches: accept``), so that the rules need not know how batches are read.
BatchReader = Callable[["MessageRules", NewMessage, str, str], Prepared]


class MessageRules:
    """Per-channel intake rules for HL7 v2 messages (pure: no I/O, testable without sockets)."""

    def __init__(
        self,
        channel: str,
        accept: tuple[str, ...],
        default_charset: str,
        always_ack: bool = True,
        duplicates: DuplicatePolicy = DEFAULT_POLICY,
        batches: BatchReader | None = None,
    ) -> None:
        self.channel = channel
        self.batches = batches
        self.accept = accept
        self.default_charset = default_charset
        self.always_ack = always_ack
        self.duplicates = duplicates

    def prepare(self, payload: bytes, peer: str = "", sender: str = "") -> Prepared:
        """Check ``payload`` for the journal. ``sender`` is the identity the source proved
        (``cert:<subject>``, ``token:<name>``); without one, the message is attributed to what
        it declares: the channel with MSH-3^MSH-4 (a document: the channel alone)."""
        row = self._row(payload, peer, sender)
        header = fallback_header()
        try:
            text, codec = decode(payload, self.default_charset)
        except EngineError as exc:
            return self._reject(row, *read_undecodable(payload), exc)
        row.charset = codec
        try:
            if is_batch(text):
                if self.batches:
                    return self._batch(row, text, codec)
                header = read_batch_header(text)
                _fill_header(row, header)
                raise ParseError(
                    "HL7 batches (FHS/BHS) are not accepted: send one message per frame"
                )
            header = read_header(text)
            if self.batches and holds_several(text):
                return self._batch(row, text, codec)
            _fill_header(row, header)
            if not header.message_type:
                raise ParseError("MSH-9 (message type) is empty")
            kind = f"{header.message_type}^{header.trigger}"
            if header.message_type == "ACK":
                return self._acknowledgment(row, header, codec, kind)
            if not type_matches(kind, self.accept):
                raise UnsupportedMessageType(
                    f"channel {self.channel!r} does not accept {_spoken(kind)} messages"
                )
            msg = Message(text)
            row.patient_key = patient_key(msg)
            if header.message_type in _DOCUMENT_CARRIERS:
                check_carried_documents(msg)
        except EngineError as exc:
            return self._reject(row, header, codec, None, exc)
        row.ack_code = AckCode.AA
        return Prepared(row, header, codec, None)

    def _batch(self, row: NewMessage, text: str, codec: str) -> Prepared:
        assert self.batches is not None
        return self.batches(self, row, text, codec)

    def _row(self, payload: bytes, peer: str, sender: str) -> NewMessage:
        return NewMessage(
            channel=self.channel, raw=payload, peer=peer, sender=sender, duplicates=self.duplicates
        )

    def _acknowledgment(self, row: NewMessage, header: Header, codec: str, kind: str) -> Prepared:
        """An ACK sent to us is journaled and never answered (HL7: an acknowledgment is not
        acknowledged; answering risks NAK loops between two engines). It is routed when the
        channel accepts ``ACK^*``, else kept as a dead letter."""
        if type_matches(kind, self.accept):
            prepared = Prepared(row, header, codec, None)
        else:
            refusal = UnsupportedMessageType(
                f"an acknowledgment ({_spoken(kind)}) is never answered; channel "
                f"{self.channel!r} does not accept ACK messages"
            )
            prepared = self._reject(row, header, codec, None, refusal)
        prepared.answer = False
        return prepared

    def prepare_rejected(
        self, payload: bytes, peer: str, error: EngineError, sender: str = ""
    ) -> Prepared:
        """A payload refused before it could be read (e.g. oversized), kept as a dead letter."""
        row = self._row(payload, peer, sender)
        try:
            text, codec = decode(payload, self.default_charset)
            return self._reject(row, read_header(text), codec, None, error)
        except (EngineError, ValueError):
            return self._reject(row, *read_undecodable(payload), error)

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
        return self._reject(prepared.row, prepared.header, prepared.codec, None, error)

    def _reject(
        self,
        row: NewMessage,
        header: Header,
        codec: str,
        ack_charset: str | None,
        exc: EngineError,
    ) -> Prepared:
        if header.control_id and row.control_id is None:
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
        return Prepared(row, header, codec, exc, ack_charset=ack_charset)

    def ack(
        self,
        prepared: Prepared,
        appended: Appended | None,
        failure: EngineError | None,
        processed: EndState | None = None,
        *,
        application: bool = False,
    ) -> bytes | None:
        """The ACK bytes to send, or ``None`` when the sender asked for none (MSH-15/16) or
        sent an acknowledgment itself.

        With ``processed`` (a source answering after processing), an accepted message's ACK
        says what the pipeline made of it: ``AR`` for a permanent refusal (a dead letter),
        ``AE`` for a message kept for identity review or waiting for its patient.
        ``application``: the application ACK (AA/AE/AR) that follows a commit ACK in enhanced
        mode, sent only when MSH-16 asks for it."""
        if not prepared.answer:
            return None
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
        header = prepared.header
        if application or prepared.application_only:
            code = commit_code(False, ok, reject)
            # MLLP senders wait for an answer: always_ack answers NE/ER/SU too, except for an
            # application ACK following a commit ACK (that one is answered already).
            asked = wants_ack(header, code) or (self.always_ack and not application)
        else:
            code = commit_code(prepared.enhanced, ok, reject)
            asked = not prepared.enhanced or self.always_ack or wants_ack(header, code)
        if not asked:
            return None
        ack = build_ack(header, code, text=text, error_code=err_code, charset=prepared.ack_charset)
        return encode_ack(ack, prepared.codec)


class DocumentRules(MessageRules):
    """Intake rules for a channel whose source receives CDA documents alone. Over MLLP the
    answer is still an HL7 ACK, whose MSA-2 is the document id."""

    #: Documents up to this size are checked on the event loop (``engine.intake.offload``):
    #: only their prolog and header are read, 0.4-0.6 ms of CPU from 131 KB to 768 KB here.
    inline_max = 1024 * 1024

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
            doc = read_document_header(payload)  # the prolog and header only: no body
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
            return self._reject(row, header, "ascii", None, exc)
        row.ack_code = AckCode.AA
        return Prepared(row, header, "ascii", None)


def document_patient_key(doc: CdaPayload) -> str | None:
    """``value^OID`` of the recordTarget's first local identifier (the IPP), like the PID-3
    key of a message, else of its INS; None without either. ParseError when it names no single
    patient (in the header intake reads: a second recordTarget after the author is the
    pipeline's to refuse)."""
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


def _spoken(kind: str) -> str:
    """``SIU^S12`` as ``SIU S12``: a reason free of separators reads without escapes."""
    return kind.replace("^", " ").strip()
