"""Per-channel validation of CDA R2 documents: XSD and the CI-SIS header rules (DOMAIN.md §4).

Well-formedness comes first (:func:`engine.cda.safexml.parse_document` names the line). Every
problem is returned at once, with its line and a stable rule id, so a sender fixes a document in
one round. Messages name elements and attributes, never values: a CDA carries patient data, and
these messages reach logs, dead letters and acknowledgements.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.xpath import CDA_NS, CLINICAL_DOCUMENT, attr, first_of, select
from engine.errors import InvalidIns
from engine.identity.ins import check_matricule, classify_oid

Schema = Literal["cda", "cisis"]

#: The copies shipped with the package (README.md there says where they come from).
SCHEMAS = Path(__file__).resolve().parent / "schemas"
_ENTRIES: dict[str, Path] = {
    "cda": SCHEMAS / "hl7-cda-core-2.0" / "normative" / "infrastructure" / "cda" / "CDA.xsd",
    "cisis": SCHEMAS / "ansforge-cisis-extended" / "CDA_extended.xsd",
}
#: HL7 France and CI-SIS: every French CDA declares both as ClinicalDocument/templateId.
COMMON_TEMPLATE_IDS = ("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1")
_TS = re.compile(r"[0-9]{8}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]+)?)?)?)?(?:[+-][0-9]{4})?")


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a document fails: where (source line), which rule (stable id), and what."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message} [{self.rule}]"


def validate(root: etree._Element, schema: Schema | None, cisis_header: bool) -> list[Problem]:
    """What a channel's settings ask for: XSD (when ``schema``) and CI-SIS header checks."""
    problems = xsd_errors(root, schema) if schema else []
    if cisis_header:
        problems += cisis_header_problems(root)
    return sorted(problems, key=lambda p: p.line)  # stable: a line's XSD errors come first


class _LocalOnly(etree.Resolver):  # type: ignore[misc, unused-ignore]
    """Only the shipped ``.xsd`` files: libxml2 skips an xs:import it cannot reach with a mere
    warning (the schema would silently validate less), and must never fetch one from a network."""

    def resolve(self, url: str, pubid: object, context: object) -> None:
        path = Path(unquote(urlparse(url).path) if url.startswith("file:") else url).resolve()
        if not (path.suffix == ".xsd" and path.is_relative_to(SCHEMAS) and path.is_file()):
            raise OSError(f"schema location {url} is not a file of {SCHEMAS}")


@cache
def _schema(schema: Schema) -> tuple[etree.XMLSchema, threading.Lock]:
    """The schema, compiled once (~20 ms CDA, ~80 ms CI-SIS), and a lock: an XMLSchema keeps
    its error log on the instance, so two threads validating at once would mix their errors."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_LocalOnly())
    try:
        return etree.XMLSchema(etree.parse(str(_ENTRIES[schema]), parser)), threading.Lock()
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
        raise RuntimeError(f"the {schema} schema in {SCHEMAS} does not load: {exc}") from exc


def xsd_errors(root: etree._Element, schema: Schema) -> list[Problem]:
    """Errors against the normative CDA R2 schema (``cda``) or ANS's extended one (``cisis``):
    the normative one refuses the IHE lab, DICOM and IHE pharmacy elements French CDAs use."""
    validator, lock = _schema(schema)
    with lock:
        validator.validate(root)
        log = list(validator.error_log)
    return [Problem(e.line or 0, "xsd", _sanitize(e.type_name, e.message)) for e in log]


_MESSAGE = re.compile(r"(?:Element '([^']+)'(?:, attribute '([^']+)')?: )?(.*)", re.S)
_REQUIRED = re.compile(r"The attribute '([\w.:-]+)' is required but missing\.")
_KINDS = (  # a part of libxml2's error type name, what it means without quoting the document
    ("PATTERN", "the value does not match its datatype's pattern"),
    ("DATATYPE", "the value is not valid for its datatype"),
    ("ENUMERATION", "the value is not one its datatype allows"),
    ("LENGTH", "the value's length is outside its datatype's bounds"),
    ("CVC_AU", "the value differs from the fixed value the schema sets"),
    ("COMPLEX_TYPE_3_2", "the attribute is not allowed"),
    ("COMPLEX_TYPE_2_3", "text is not allowed here, only elements"),
)


def _sanitize(type_name: str, message: str) -> str:
    """libxml2's message without the values it quotes. XML names hold no quote, so the element
    and attribute prefix parses exactly; the rest is kept when it quotes nothing (``This element
    is not expected. Expected is ...``), else replaced by what its error type means."""
    element, attribute, detail = _MESSAGE.fullmatch(message.strip()).groups()  # type: ignore[union-attr]
    where = f"{element}, attribute {attribute}" if attribute else element
    if "'" in detail or '"' in detail:
        required = _REQUIRED.fullmatch(detail)  # the quoted name comes from the schema
        detail = f"the attribute {required[1]} is required but missing" if required else ""
        kinds = (text for part, text in _KINDS if part in type_name)
        detail = detail or next(kinds, f"schema rule {type_name} is not met")
    return (f"element {where}: {detail}" if where else detail).replace(f"{{{CDA_NS}}}", "")


_CHILDREN = (  # the ClinicalDocument's child, the attributes it needs, rule, form of the first
    ("id", "root", "cisis.id", None, ""),
    ("setId", "root", "cisis.version", None, ""),
    ("versionNumber", "value", "cisis.version", re.compile("[0-9]+"), "an integer"),
    ("code", "code codeSystem", "cisis.code", None, ""),
    ("effectiveTime", "value", "cisis.effective_time", _TS, "a date, YYYYMMDD[hhmm[ss]][+zzzz]"),
    ("confidentialityCode", "code", "cisis.confidentiality", re.compile("[NRV]"), "N, R or V"),
)
_CUSTODIAN = "custodian/assignedCustodian/representedCustodianOrganization"
_BR = "contains(concat(' ', normalize-space(@qualifier), ' '), ' BR ')"
_TRAITS = (  # what patientRole/patient holds (the line is its first step's), its name
    (f"v:name/v:family[{_BR}][text()[normalize-space()]]", "name/family with @qualifier BR"),
    ("v:name/v:given[text()[normalize-space()]]", "name/given"),
    ("v:administrativeGenderCode[normalize-space(@code)]", "administrativeGenderCode/@code"),
    ("v:birthTime[normalize-space(@value)]", "birthTime/@value"),
)


def cisis_header_problems(root: etree._Element) -> list[Problem]:
    """The CI-SIS rules on the ``ClinicalDocument``'s own children (volet structuration minimale),
    not its descendants: ``author`` and others also occur inside the body."""
    if root.tag != CLINICAL_DOCUMENT:
        return [Problem(_line(root), "cisis.root", "the root is not an HL7 v3 ClinicalDocument")]
    return [*_header(root), *_record_target(root)]


def _header(root: etree._Element) -> Iterator[Problem]:
    present = {str(oid).strip() for oid in select(root, "v:templateId/@root")}
    for oid in (oid for oid in COMMON_TEMPLATE_IDS if oid not in present):
        yield Problem(_line(root), "cisis.template_ids", f"no templateId with @root {oid}")
    for name, attributes, rule, form, what in _CHILDREN:
        element, first = first_of(root, f"v:{name}"), attributes.split()[0]
        absent = [f"@{a}" for a in attributes.split() if not attr(element, a)]
        if element is None or absent:
            lacks = f"{name} lacks {' and '.join(absent)}" if element is not None else ""
            yield Problem(_line(element, root), rule, lacks or f"ClinicalDocument lacks {name}")
        elif form is not None and not form.fullmatch(attr(element, first)):
            yield Problem(_line(element), rule, f"{name}/@{first} is not {what}")
    authors = select(root, "v:author")
    if not any(select(a, "v:assignedAuthor/v:id") for a in authors):
        yield Problem(_line(*authors, root), "cisis.author", "no author has an assignedAuthor/id")
    if first_of(root, "v:" + _CUSTODIAN.replace("/", "/v:")) is None:
        at = select(root, "v:custodian | v:custodian/v:assignedCustodian")
        yield Problem(_line(*at[::-1], root), "cisis.custodian", f"no {_CUSTODIAN}")  # deepest


def _record_target(root: etree._Element) -> Iterator[Problem]:
    """One ``recordTarget``, its INS (an INS OID and a valid matricule), the INS traits."""
    targets = select(root, "v:recordTarget")
    roles = select(root, "v:recordTarget/v:patientRole")
    if len(targets) != 1 or len(roles) != 1:
        at = _line(*targets[1:], *targets, root)
        yield Problem(at, "cisis.record_target", "not exactly one recordTarget/patientRole")
        return
    role = roles[0]
    ids = select(role, "v:id[not(@nullFlavor)]")
    ins = [i for i in ids if classify_oid(attr(i, "root")) is not None]
    if not ins:
        yield Problem(_line(role), "cisis.record_target.ins", "no patientRole/id with an INS @root")
    for id_ in ins:
        try:
            check_matricule(attr(id_, "extension"))
        except InvalidIns as exc:  # its reason never quotes the value
            yield Problem(_line(id_), "cisis.record_target.ins", f"patientRole/id: {exc.reason}")
    for path, what in _TRAITS:  # each one missing when patient is
        if not select(role, f"v:patient/{path}"):
            anchor = first_of(role, f"v:patient/{path.split('/')[0].split('[')[0]}")
            at = _line(anchor, first_of(role, "v:patient"), role)
            yield Problem(at, "cisis.record_target.traits", f"patient lacks {what}")


def _line(*candidates: etree._Element | None) -> int:  # the offending element, else its parent
    return next((int(c.sourceline or 0) for c in candidates if c is not None), 0)
