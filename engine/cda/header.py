"""What the record store keeps of a CDA R2 document's header (CI-SIS, DOMAIN.md §4).

Only the ``ClinicalDocument``'s own children are read: ``author`` or ``documentationOf`` also
occur inside the body's entries. A missing optional element gives ``""``, not an error, so a
document the CI-SIS checks refuse can still be described. Text is an element's own text, not
``itertext()``, which would pull in an entity the hardened parser left unexpanded.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.xpath import CDA_NS, CLINICAL_DOCUMENT, attr, first_of, select
from engine.errors import ParseError


@dataclass(frozen=True, slots=True)
class DocumentHeader:
    """Header metadata. Ids are ``root`` or ``root^extension``; absent values are ``""``."""

    document_id: str
    set_id: str
    version: int  # versionNumber/@value, 1 when absent
    type_code: str  # ClinicalDocument/code/@code (LOINC 11502-2, SYNTH, REMB...)
    type_system: str  # code/@codeSystem
    type_label: str  # code/@displayName
    title: str
    effective_time: str  # effectiveTime/@value as written (HL7 TS)
    confidentiality: str  # confidentialityCode/@code: N, R or V
    author_id: str  # author/assignedAuthor/id (RPPS/ADELI): root^extension
    author_name: str  # "Given Family" of assignedPerson
    facility: str  # custodian's representedCustodianOrganization/name
    service_start: str  # documentationOf/serviceEvent/effectiveTime/low/@value
    service_end: str  # .../high/@value
    replaces: str  # relatedDocument[@typeCode="RPLC"]/parentDocument/id, "" if none
    template_ids: tuple[str, ...]  # ClinicalDocument/templateId/@root, in document order
    level: str  # "N1" (nonXMLBody) or "N3" (structuredBody)


def read_header(root: etree._Element) -> DocumentHeader:
    """The header of a parsed ``ClinicalDocument`` (namespace ``urn:hl7-org:v3``).

    ParseError when the root is not a ClinicalDocument: an all-empty header would otherwise
    hide that the payload is some other XML.
    """
    if root.tag != CLINICAL_DOCUMENT:
        raise ParseError(f"the root element is not a ClinicalDocument in {CDA_NS}")
    author = "v:author[1]/v:assignedAuthor"
    custodian = "v:representedCustodianOrganization"
    service = "(v:documentationOf/v:serviceEvent/v:effectiveTime)[1]"
    return DocumentHeader(
        document_id=_id(root, "v:id"),
        set_id=_id(root, "v:setId"),
        version=_version(_attr(root, "v:versionNumber", "value")),
        type_code=_attr(root, "v:code", "code"),
        type_system=_attr(root, "v:code", "codeSystem"),
        type_label=_attr(root, "v:code", "displayName"),
        title=_text(root, "v:title"),
        effective_time=_attr(root, "v:effectiveTime", "value"),
        confidentiality=_attr(root, "v:confidentialityCode", "code"),
        author_id=_id(root, f"{author}/v:id"),
        author_name=_person_name(root, f"{author}/v:assignedPerson/v:name[1]"),
        facility=_text(root, f"v:custodian/v:assignedCustodian/{custodian}/v:name"),
        service_start=_attr(root, f"{service}/v:low", "value"),
        service_end=_attr(root, f"{service}/v:high", "value"),
        replaces=_id(root, 'v:relatedDocument[@typeCode="RPLC"]/v:parentDocument/v:id'),
        template_ids=tuple(str(r).strip() for r in select(root, "v:templateId/@root")),
        level=_level(root),
    )


def _attr(root: etree._Element, path: str, name: str) -> str:
    return attr(first_of(root, path), name)


def _text(root: etree._Element, path: str) -> str:
    element = first_of(root, path)
    return "" if element is None else str(element.text or "").strip()


def _id(root: etree._Element, path: str) -> str:
    """An II as ``root`` or ``root^extension``; ``""`` without a root.

    An extension is only unique within its root, so it is never kept on its own.
    """
    oid, extension = _attr(root, path, "root"), _attr(root, path, "extension")
    return f"{oid}^{extension}" if oid and extension else oid


def _version(value: str) -> int:
    """``versionNumber`` is a positive INT; anything else counts as the first version."""
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else 1


def _person_name(root: etree._Element, path: str) -> str:
    """Given names then family names, as written: case and order within each kept.

    An authoring device (CNAM-HR, some lab systems) has no ``assignedPerson``: ``""``.
    """
    parts = select(root, f"{path}/v:given")
    parts += select(root, f"{path}/v:family")
    texts = (str(part.text or "").strip() for part in parts)
    return " ".join(text for text in texts if text)


def _level(root: etree._Element) -> str:
    """N1 for an unstructured body (a PDF, plain text...), N3 for a structured one."""
    if first_of(root, "v:component/v:nonXMLBody") is not None:
        return "N1"
    if first_of(root, "v:component/v:structuredBody") is not None:
        return "N3"
    return ""
