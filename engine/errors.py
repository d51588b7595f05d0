"""The engine's one error tree.

Every failure the pipeline can meet is one of these classes. Each has a stable machine ``code``
(used in dead letters, filters and ``aiguillage dlq list --code``) and a human ``reason``.
:class:`TransientError` subclasses are retried with backoff; :class:`PermanentError` subclasses
dead-letter at once (DESIGN.md contract 6).
"""

from __future__ import annotations

from typing import ClassVar


class EngineError(Exception):
    """Base of all errors the engine reports about a message."""

    code: ClassVar[str] = "engine_error"
    transient: ClassVar[bool] = False
    #: HL7 acknowledgement code sent when this error is found before the ACK.
    ack_code: ClassVar[str] = "AE"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(EngineError):
    """A failure that may go away: retried with exponential backoff."""

    code = "transient"
    transient = True


class StoreUnavailable(TransientError):
    code = "store_unavailable"


class SourceBusy(TransientError):
    """Unfinished frames hold the source's whole buffer budget: resend later."""

    code = "source_busy"


class DestinationUnavailable(TransientError):
    code = "destination_unavailable"


class PermanentError(EngineError):
    """A failure that will not go away by retrying: dead-lettered at once."""

    code = "permanent"


class DestinationRejected(PermanentError):
    """The receiving system refused the message (an MLLP peer answered AR)."""

    code = "destination_rejected"


class PoisonMessage(PermanentError):
    """The broker dead-lettered the message after its delivery limit: handling it kept
    failing (a crash), so it is kept for an operator instead of being retried."""

    code = "poison_message"


class FramingError(PermanentError):
    """The byte stream does not follow MLLP framing."""

    code = "framing_error"
    ack_code = "AR"


class MessageTooLarge(FramingError):
    code = "message_too_large"


class JunkSuppressed(FramingError):
    """The summary of what a peer sent past its junk budget (counted, not journaled one by
    one: see engine/security/abuse.py)."""

    code = "junk_suppressed"


class EncodingError(PermanentError):
    """The bytes cannot be decoded with the declared (or default) character set."""

    code = "invalid_encoding"
    ack_code = "AR"


class ParseError(PermanentError):
    """The text is not an HL7 v2 message (no MSH, bad separators...)."""

    code = "parse_error"
    ack_code = "AR"


class UnsupportedMessageType(PermanentError):
    """The channel does not accept this message type / trigger event."""

    code = "unsupported_message_type"
    ack_code = "AR"


class ValidationError(PermanentError):
    """The message is structurally invalid for its type (hl7apy validation, required fields)."""

    code = "invalid_message"


class TransformError(PermanentError):
    """A transform or mapping step could not process the message."""

    code = "transform_failed"


class UnknownPatient(PermanentError):
    """The message names no usable patient identifier."""

    code = "missing_patient"


class InvalidIns(PermanentError):
    """A matricule sent as an INS is malformed or its key is wrong."""

    code = "invalid_ins"


class InsRefused(PermanentError):
    """An INS this deployment does not accept (a test or demo OID in production)."""

    code = "ins_refused"


class IdentityError(EngineError):
    """A patient-identity outcome that needs waiting or a human, not a dead letter.

    ``disposition`` says where the message goes: ``held`` (waits until an ADT makes its patient
    known, then replays by itself) or ``review`` (an operator decides). ``code`` is the DMP
    error code (DOMAIN.md §3). ``keys`` are the identity keys a held message waits on.
    """

    disposition: ClassVar[str] = "review"
    ack_code = "AE"

    def __init__(
        self, reason: str, candidates: list[int] | None = None, keys: tuple[str, ...] = ()
    ) -> None:
        super().__init__(reason)
        #: Stored patients involved (shown to the operator).
        self.candidates = candidates or []
        self.keys = keys


class PatientNotKnown(IdentityError):
    """902: a result or document for a patient the store does not know yet."""

    code = "902"
    disposition = "held"


class InsMissing(IdentityError):
    """903: no usable INS where the channel requires one."""

    code = "903"


class IdentityConflict(IdentityError):
    """904: the INS or the traits do not match the stored identity exactly."""

    code = "904"


class IncompleteTraits(IdentityError):
    """905: an INS without the traits that must travel with it."""

    code = "905"


class DocumentError(PermanentError):
    """A CDA document is unsafe, malformed or breaks a CI-SIS rule; the reason names the line."""

    code = "invalid_document"
    ack_code = "AR"


class RecordClosed(DocumentError):
    """A document for a closed record (closed by the patient, or death): refused and
    dead-lettered; the record may reopen."""

    code = "record_closed"


class NotDocumentOwner(PermanentError):
    """A replacement or deletion of a document from another sender identity than the one that
    filed it (or its ownership group, ``engine.document_owner_groups``): refused, nothing
    written. The reason names document ids and sender identities only."""

    code = "not_document_owner"
    ack_code = "AR"


class RecordKeyError(PermanentError):
    """The record store's document bytes cannot be sealed or opened (encryption at rest,
    ``engine.store.crypto``). Reasons name row ids, key ids and files, never contents."""

    code = "record_key"


class RecordKeyMissing(RecordKeyError):
    """Bytes sealed under a key the keyring does not hold (a lost or unconfigured key file)."""

    code = "record_key_missing"


class RecordTampered(RecordKeyError):
    """Sealed bytes fail authentication: changed in the database, or moved to another row."""

    code = "record_tampered"


def _subclasses(cls: type[EngineError]) -> list[type[EngineError]]:
    return [cls] + [s for sub in cls.__subclasses__() for s in _subclasses(sub)]


#: The HL7 acknowledgement code of each error code (for an ACK sent after processing).
ACK_CODES: dict[str, str] = {c.code: c.ack_code for c in _subclasses(EngineError)}
