"""A carried or received CDA read for the record store: parsed once, checked (XSD, CI-SIS
header rules) and with the identity its recordTarget names. Pure: no database."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.conformance import Schema, validate
from engine.cda.header import DocumentHeader, read_header
from engine.cda.patient_traits import cda_identity
from engine.cda.safexml import parse_document
from engine.errors import DocumentError, ParseError
from engine.hl7v2.embedded_documents import DocumentRecord
from engine.identity.model import Identity


@dataclass(frozen=True, slots=True)
class ReadDocument:
    """A carried CDA, parsed, checked and with the identity its recordTarget names."""

    record: DocumentRecord
    root: etree._Element
    header: DocumentHeader
    target: Identity


def read_document(
    record: DocumentRecord,
    xsd: Schema | None = None,
    cisis_header: bool = False,
    root: etree._Element | None = None,
) -> ReadDocument:
    """Parse (unless ``root`` is the parsed ``record.content``) and check one CDA; raises
    DocumentError naming the OBX, if any, and the line."""
    where = f"the CDA of OBX {record.obx}" if record.obx else "the CDA"
    try:
        if root is None:
            root = parse_document(record.content)
        header = read_header(root)
        problems = validate(root, xsd, cisis_header)
        if problems:
            shown = "; ".join(f"line {p.line}: {p.rule}: {p.message}" for p in problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise DocumentError(f"{shown}{more}")
        if not header.document_id:
            raise DocumentError("the CDA has no ClinicalDocument/id")
        target = cda_identity(root)
    except (DocumentError, ParseError) as exc:
        raise DocumentError(f"{where}: {exc.reason}") from exc
    return ReadDocument(record, root, header, target)
