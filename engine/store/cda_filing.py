"""Documents into the record store: one row per document id and version, with its lifecycle.

The documents come read and checked (``engine.cda.document``, the transform stage) and the patient
from the identity rules (``engine.pipeline.identify``): a document never creates or changes a
patient. When PID-3 and the CDA ``recordTarget`` both give an INS they must be the same
(DOMAIN.md §3): otherwise the document waits for identity review (904).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import asdict
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, bindparam, select, union_all, update

from engine.cda.document import ReadDocument
from engine.cda.header import DocumentHeader
from engine.errors import DocumentError, IdentityConflict
from engine.fastsql import FastStatement, insert_into
from engine.hl7v2.embedded_documents import DocumentRecord
from engine.hl7v2.values import parse_ts
from engine.identity.model import Identity
from engine.store import crypto, patients
from engine.store.cda_entries import store_extracts
from engine.store.consent import refuse_closed
from engine.store.documents import CURRENT, DELETED, SUPERSEDED, documents
from engine.store.ownership import Filer
from engine.transforms.map_cda_entries import DocumentEntries

log = structlog.get_logger("engine.documents")
_INSERT = insert_into(documents, returning=documents.c.id)
_d = documents.c
#: The versions stored after a document: those that replace it, and its set's later ones. Each
#: by its own index (migration 0019), the patient checked on the few rows found: a lookup by
#: patient read every document of the patient.
_LATER_VERSIONS = FastStatement(
    union_all(
        select(_d.patient_id, _d.filed_by).where(_d.replaces == bindparam("document_id")),
        select(_d.patient_id, _d.filed_by).where(
            _d.set_id == bindparam("set_id"), _d.version > bindparam("version")
        ),
    )
)
#: Header fields with a column of their own (template ids are checked, not stored).
_HEADER_COLUMNS = frozenset(
    f.name for f in dataclasses.fields(DocumentHeader) if f.name in documents.c
)


def check_same_patient(
    conn: Connection, patient_id: int, sender: Identity, documents_: list[ReadDocument]
) -> None:
    """Each CDA's recordTarget is the patient the message is filed under (DOMAIN.md §3);
    raises IdentityConflict (904)."""
    pid = {i.value for i in sender.ins}
    for document in documents_:
        cda = [i.value for i in document.target.ins]
        if pid and cda and not pid & set(cda):
            raise IdentityConflict("PID-3 and the CDA recordTarget name different INS")
        by_ins, by_local = patients.lookup(conn, cda, document.target.local_ids)
        others = sorted({*by_ins, *by_local} - {patient_id})
        if others:
            raise IdentityConflict(
                "the CDA recordTarget names another patient than the message's PID", others
            )


def store_document(
    conn: Connection,
    patient_id: int,
    message_id: int,
    document: ReadDocument,
    entries: DocumentEntries,
    now: datetime,
    filer: Filer,
) -> int:
    """Store (or apply the lifecycle action of) one document, and its ``entries`` when it is
    stored for the first time; returns its row id. A replacement or deletion of versions
    another sender filed raises NotDocumentOwner before anything is written
    (``engine.store.ownership``)."""
    refuse_closed(conn, patient_id)  # a closed record takes no new documents (DOMAIN.md §6)
    record, header = document.record, document.header
    digest = hashlib.sha256(record.content).hexdigest()
    existing = conn.execute(
        select(_d.id, _d.sha256, _d.status, _d.patient_id).where(
            _d.document_id == header.document_id, _d.version == header.version
        )
    ).first()
    if existing is not None and existing.patient_id != patient_id:
        raise IdentityConflict(
            "this document id and version is stored for another patient", [existing.patient_id]
        )
    if record.action == "delete":  # the copy a deletion carries need not be byte-identical
        return _delete(conn, patient_id, message_id, document, digest, existing, now, filer)
    parent = header.replaces or (record.parent_number if record.action == "replace" else "")
    if existing is not None and existing.status == DELETED:
        # A late copy of a deleted document (a replacement overtaken by its deletion): what
        # it replaced is superseded all the same, and it stays deleted.
        if parent:
            _supersede(conn, patient_id, parent, header, now, filer)
        log.info("document_already_deleted", message_id=message_id, document_row=existing.id)
        return int(existing.id)
    if existing is not None and existing.sha256 != digest:
        raise DocumentError(
            f"document {header.document_id} version {header.version} is already stored with "
            "other content: a new content needs a new version"
        )
    if existing is not None:  # a resend or a replay: applied once
        return int(existing.id)
    if parent:
        if not record.masking_given:
            record = _inherit_masking(conn, patient_id, parent, record)
            document = dataclasses.replace(document, record=record)
        _supersede(conn, patient_id, parent, header, now, filer)
    status = SUPERSEDED if _replaced_already(conn, patient_id, header, filer) else CURRENT
    row_id = _insert(conn, patient_id, message_id, document, digest, status, now, filer)
    stored = store_extracts(conn, patient_id, message_id, row_id, entries, now)
    log.info(
        "document_stored",
        message_id=message_id,
        document_row=row_id,
        action=record.action,
        status=status,
        entries=stored,
    )
    return row_id


def _inherit_masking(
    conn: Connection, patient_id: int, parent: str, record: DocumentRecord
) -> DocumentRecord:
    """A replacement sent without masking flags keeps those of the version it replaces."""
    row = conn.execute(
        select(_d.masked_ps, _d.invisible_patient, _d.invisible_legal_reps)
        .where(_d.patient_id == patient_id, _d.document_id == parent)
        .order_by(_d.version.desc())
        .limit(1)
    ).first()
    if row is None:
        return record
    return dataclasses.replace(
        record,
        masked_ps=bool(row[0]),
        invisible_patient=bool(row[1]),
        invisible_legal_reps=bool(row[2]),
    )


def _replaced_already(
    conn: Connection, patient_id: int, header: DocumentHeader, filer: Filer
) -> bool:
    """A late original: a later version that replaces it is already stored, filed by a sender
    that may replace this one (a replacement sent ahead by another sender does not count)."""
    rows = _LATER_VERSIONS.execute(
        conn,
        # Without a set, NULL: it matches no row (a document without one stores "").
        {
            "document_id": header.document_id,
            "set_id": header.set_id or None,
            "version": header.version,
        },
    )
    return any(
        filer.owners.share(filer.identity, filed_by) or not filed_by
        for patient, filed_by in rows
        if patient == patient_id
    )


def _supersede(
    conn: Connection,
    patient_id: int,
    parent: str,
    header: DocumentHeader,
    now: datetime,
    filer: Filer,
) -> None:
    """Mark the replaced version, and earlier versions of the same set, superseded."""
    replaced = _d.document_id == parent
    if header.set_id:  # earlier versions of the same set are superseded too
        replaced = replaced | ((_d.set_id == header.set_id) & (_d.version < header.version))
    mine = (_d.patient_id == patient_id) & replaced
    # Ownership is the document's, whatever its status: a superseded version is not up for grabs.
    filer.check("replace", conn.execute(select(_d.document_id, _d.filed_by).where(mine)))
    conn.execute(
        update(documents)
        .where(mine, _d.status == CURRENT)
        .values(status=SUPERSEDED, updated_at=now)
    )


def _delete(
    conn: Connection,
    patient_id: int,
    message_id: int,
    document: ReadDocument,
    digest: str,
    existing: Any,
    now: datetime,
    filer: Filer,
) -> int:
    """Mark the document deleted (kept for audit, hidden from readers)."""
    header, record = document.header, document.record
    targets = {header.document_id, *([record.document_number] if record.document_number else [])}
    named = (_d.patient_id == patient_id) & _d.document_id.in_(targets)
    filer.check("delete", conn.execute(select(_d.document_id, _d.filed_by).where(named)))
    conn.execute(
        update(documents).where(named, _d.status != DELETED).values(status=DELETED, updated_at=now)
    )
    if existing is not None:
        return int(existing.id)
    # Never stored (or stored under another id): keep what the deletion carried, deleted.
    return _insert(conn, patient_id, message_id, document, digest, DELETED, now, filer)


def _insert(
    conn: Connection,
    patient_id: int,
    message_id: int,
    document: ReadDocument,
    digest: str,
    status: str,
    now: datetime,
    filer: Filer,
) -> int:
    header, record = document.header, document.record
    values: dict[str, Any] = {k: v for k, v in asdict(header).items() if k in _HEADER_COLUMNS}
    aad = crypto.document_aad(header.document_id, header.version)
    key_id, blob = crypto.seal(conn, record.content, aad)
    values.update(
        patient_id=patient_id,
        message_id=message_id,
        authored_at=parse_ts(header.effective_time) if header.effective_time else None,
        masked_ps=record.masked_ps,
        invisible_patient=record.invisible_patient,
        invisible_legal_reps=record.invisible_legal_reps,
        status=status,
        filed_by=filer.identity,
        sha256=digest,  # of the plaintext
        content=blob,
        key_id=key_id,
        stored_at=now,
        updated_at=now,
    )
    return int(_INSERT.execute(conn, values)[0][0])
