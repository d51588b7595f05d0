"""The check a document sender hears about in its ACK: every CDA the message carries decodes
and parses safely (DOMAIN.md §3). A failure is an ``AR`` naming the OBX and the line; the
finer checks (schema, CI-SIS header, identity) run in the pipeline."""

from __future__ import annotations

from engine.cda.safexml import parse_document
from engine.errors import DocumentError
from engine.hl7v2.embedded_documents import carries_documents, extract_documents
from engine.hl7v2.reader import Message


def check_carried_documents(msg: Message) -> None:
    """Raises DocumentError when a CDA of ``msg`` is not safe, well-formed XML."""
    if not carries_documents(msg):
        return
    for record in extract_documents(msg):
        try:
            parse_document(record.content)
        except DocumentError as exc:
            reason = f"the CDA of OBX {record.obx or '?'}: {exc.reason}"
        else:
            continue
        # Raised outside the handler, unchained: the first error's traceback (the parsing
        # frames) would otherwise ride along with this one for as long as it is kept.
        raise DocumentError(reason)
