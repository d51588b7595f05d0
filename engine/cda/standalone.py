"""A CDA document received alone: a file dropped in a watched directory, an HTTP POST body, or
an MLLP frame holding the XML itself rather than an HL7 v2 message.

Routes and filters see it as message type ``CDA`` with the document type code as trigger
(``CDA^11502-2`` for a CR-BIO, ``CDA^REMB`` for the reimbursement history), so that a channel
accepts and routes documents with the same ``accept`` and ``message_types`` lists as messages.
Without PID or TXA, what happens to it is said by the document itself: a new document, or the
replacement of its ``relatedDocument[@typeCode="RPLC"]`` parent. Deletion needs a message
(MDM^T04 or ORU with OBX-11 ``D``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.header import DocumentHeader, read_header
from engine.cda.patient_traits import cda_identity
from engine.cda.safexml import parse_document
from engine.cda.screen import screen_document
from engine.cda.xpath import CLINICAL_DOCUMENT
from engine.errors import DocumentError
from engine.identity.model import Identity
from engine.payload_kinds import CDA_TYPE


@dataclass(frozen=True, slots=True)
class CdaPayload:
    """A parsed standalone document; ``raw`` is the bytes as received (stored and hashed).
    At intake (:func:`read_document_header`) ``root`` holds the header only."""

    raw: bytes
    root: etree._Element
    header: DocumentHeader

    @property
    def message_type(self) -> str:
        return CDA_TYPE

    @property
    def trigger(self) -> str:
        return self.header.type_code

    def get(self, path: str) -> str:
        """HL7 field paths address nothing in a document (the channel loader refuses field
        conditions on document channels)."""
        del path
        return ""

    def identity(self) -> Identity:
        """The patient its ``recordTarget`` names; raises ParseError when it names none or
        several."""
        return cda_identity(self.root)


def read_standalone(raw: bytes) -> CdaPayload:
    """Parse a document received alone; DocumentError when it is not safe XML or has no id."""
    root = parse_document(raw)
    header, problem = _header(root)
    if header is None:
        # This frame goes into the traceback: it must not keep the refused tree alive (see
        # engine.cda.safexml._parse).
        del root
        raise DocumentError(problem)
    return CdaPayload(raw, root, header)


def read_document_header(raw: bytes) -> CdaPayload:
    """Intake's cheap read of a document received alone: its prolog and header up to the
    ``recordTarget`` (:func:`engine.cda.screen.screen_document`), enough for the ACK's MSA-2,
    the type and the patient key; DocumentError when intake must refuse it. The body is the
    pipeline's to parse (:func:`read_standalone`)."""
    root = screen_document(raw)
    header, problem = _header(root)
    if header is None:
        del root
        raise DocumentError(problem)
    return CdaPayload(raw, root, header)


def _header(root: etree._Element) -> tuple[DocumentHeader | None, str]:
    """The header of a ClinicalDocument with an id, or None and why not."""
    if root.tag != CLINICAL_DOCUMENT:
        name = etree.QName(root).localname
        return None, f"the XML root element is {name!r}, not a CDA ClinicalDocument"
    header = read_header(root)
    if not header.document_id:
        return None, "the CDA has no ClinicalDocument/id"
    return header, ""
