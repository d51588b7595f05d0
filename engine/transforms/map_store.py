"""The transform stage's mapping for a record-store target: the operation a message, or a CDA
document received alone, asks of the record store, with its documents parsed and checked once
and their entries extracted (pure: no database)."""

from __future__ import annotations

import dataclasses

from engine.cda.conformance import Schema
from engine.cda.document import ReadDocument, read_document
from engine.cda.standalone import CdaPayload
from engine.errors import DocumentError
from engine.hl7v2.embedded_documents import Action, DocumentRecord
from engine.hl7v2.reader import Message
from engine.transforms.map_adt import PatientRecord
from engine.transforms.map_cda_entries import NO_ENTRIES, DocumentEntries, document_entries
from engine.transforms.map_hl7 import StoreOperation, map_message


def map_for_store(
    payload: Message | CdaPayload, xsd: Schema | None = None, cisis_header: bool = False
) -> StoreOperation:
    """The store operation for ``payload``; raises what :func:`map_message` raises, and
    DocumentError for a document that fails its checks (``xsd``, ``cisis_header``)."""
    if isinstance(payload, CdaPayload):
        return _standalone(payload, xsd, cisis_header)
    return with_documents(map_message(payload), xsd, cisis_header)


def with_documents(
    op: StoreOperation, xsd: Schema | None = None, cisis_header: bool = False
) -> StoreOperation:
    """``op`` with its carried documents read and checked (an operation filing documents)."""
    if op.kind != "add_documents" or op.read:
        return op
    if not op.documents:
        raise DocumentError("no CDA in the message (a document sent by reference is not fetched)")
    read = tuple(read_document(r, xsd, cisis_header) for r in op.documents)
    return dataclasses.replace(op, read=read, entries=tuple(_entries(d) for d in read))


def _standalone(doc: CdaPayload, xsd: Schema | None, cisis_header: bool) -> StoreOperation:
    """A document received alone: its recordTarget is the patient, and what it does is said
    by its relatedDocument (a replacement) or nothing (a new document). Its tree, parsed by
    the parse stage, is not parsed again."""
    action: Action = "replace" if doc.header.replaces else "initial"
    record = DocumentRecord(content=doc.raw, action=action)
    read = read_document(record, xsd, cisis_header, root=doc.root)
    return StoreOperation(
        "add_documents",
        PatientRecord(read.target),
        documents=(record,),
        read=(read,),
        entries=(_entries(read),),
    )


def _entries(document: ReadDocument) -> DocumentEntries:
    """The entries a document gives the record; none from the copy a deletion carries."""
    if document.record.action == "delete":
        return NO_ENTRIES
    return document_entries(document.root)
