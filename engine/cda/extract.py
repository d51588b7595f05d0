"""Reading the coded entries of level-3 CI-SIS documents: what the three extractors share.

The extractors are pure functions of a parsed ``ClinicalDocument`` (DOMAIN.md §4-6):

- ``engine.cda.extract_lab.lab_results``: results of a lab report (CR-BIO, TROD);
- ``engine.cda.extract_summary.summary_entries``: problems, allergies, treatments,
  vaccinations and risk factors of a VSM, an IPS-FR or a vaccination document;
- ``engine.cda.extract_remb.reimbursements``: the items of a CNAM-HR reimbursement history.

A level-1 document (``nonXMLBody``) has no entries: every extractor gives an empty list. An
absent value is ``""``: the samples leave out, or null-flavour, most optional parts. Text is
read node by node rather than with ``itertext()``, so that an entity the hardened parser left
unexpanded never reaches the output.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.xpath import CDA_NS, attr, first_of, select

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
#: The CNAM-HR document template and type code (DOMAIN.md §4).
REMB_TEMPLATE = "1.2.250.1.213.1.1.1.36"
REMB_CODE = "REMB"
#: The comment entry (FR-Commentaire-ER) is an act coded LOINC 48767-8.
COMMENT_CODE = "48767-8"


def tag(name: str) -> str:
    """The Clark name of a CDA element, as lxml writes ``element.tag``."""
    return f"{{{CDA_NS}}}{name}"


def find(element: etree._Element, path: str) -> list[etree._Element]:
    """The elements at ``path`` (XPath, CDA prefix ``v``), in document order."""
    return list(select(element, path))


def first(element: etree._Element | None, path: str) -> etree._Element | None:
    """The first element at ``path``; None when there is none or ``element`` is None."""
    if element is None:
        return None
    return first_of(element, path)


def body(root: etree._Element) -> etree._Element | None:
    """The structured body; None for a level-1 document or another root element."""
    if root.tag != tag("ClinicalDocument"):
        return None
    return first(root, "v:component/v:structuredBody")


def is_reimbursement_history(root: etree._Element) -> bool:
    """A CNAM-HR document: its sections list claims, not clinical statements."""
    templates = {attr(t, "root") for t in find(root, "v:templateId")}
    return REMB_TEMPLATE in templates or attr(first(root, "v:code"), "code") == REMB_CODE


def section_code(section: etree._Element) -> str:
    """The LOINC code a section is identified by."""
    return attr(first(section, "v:code"), "code")


def statements(section: etree._Element) -> list[etree._Element]:
    """The clinical statements of a section's own entries (not those of its subsections).

    An entry holds one statement beside an optional templateId (PaLM writes one there).
    """
    return find(section, "v:entry/*[not(self::v:templateId)]")


def plain_text(element: etree._Element | None) -> str:
    """An element's text and its descendants', whitespace collapsed.

    Comments, processing instructions and unexpanded entities give their tail, not their text.
    """
    if element is None:
        return ""
    parts = [element.text or ""]
    for node in element.iterdescendants():
        if isinstance(node.tag, str):
            parts.append(node.text or "")
        parts.append(node.tail or "")
    return " ".join("".join(parts).split())


class Narrative:
    """The section narratives' tagged parts, by ID, which coded entries point to.

    A reference is written ``#id``; some samples leave out the ``#``, which is accepted.
    """

    def __init__(self, root: etree._Element) -> None:
        self._root = root
        self._parts: dict[str, etree._Element] | None = None  # walked on first use only

    def _index(self) -> dict[str, etree._Element]:
        if self._parts is None:
            self._parts = {}
            for element in self._root.iter():
                key = element.get("ID") if isinstance(element.tag, str) else None
                if key:
                    self._parts.setdefault(str(key), element)
        return self._parts

    def resolve(self, reference: str) -> str:
        """The text a reference points to; ``""`` when it points nowhere."""
        return plain_text(self._index().get(reference.strip().removeprefix("#")))

    def text(self, element: etree._Element | None) -> str:
        """A ``text`` or ``originalText``: its own words, else those its reference points to."""
        inline = plain_text(element)
        if inline or element is None:
            return inline
        return self.resolve(attr(first(element, "v:reference"), "value"))


@dataclass(frozen=True, slots=True)
class Coded:
    """A concept as an entry codes it."""

    code: str
    system: str
    label: str


def coded(element: etree._Element | None, narrative: Narrative) -> Coded:
    """A CD: its own code, else its first coded translation (CNAM-HR codes only those).

    The label is the displayName, else the originalText (inline or referenced), whitespace
    collapsed: some samples wrap a long displayName over several lines.
    """
    if element is None:
        return Coded("", "", "")
    source = element
    if not attr(element, "code"):
        source = first(element, ".//v:translation[@code]")
        source = element if source is None else source
    label = attr(source, "displayName") or narrative.text(first(element, "v:originalText"))
    return Coded(attr(source, "code"), attr(source, "codeSystem"), " ".join(label.split()))


def value_type(value: etree._Element | None) -> str:
    """The xsi:type of a value, without a namespace prefix: PQ, ST, CD..."""
    return attr(value, XSI_TYPE).rpartition(":")[2]


def value_and_unit(value: etree._Element | None) -> tuple[str, str]:
    """An ANY value as text and unit: a PQ's number, a CD's label, an ST's words, an interval."""
    if value is None:
        return "", ""
    kind = value_type(value)
    if kind.startswith("IVL"):
        return interval(value), ""
    if kind.startswith("RTO"):
        numerator = attr(first(value, "v:numerator"), "value")
        denominator = attr(first(value, "v:denominator"), "value")
        return (f"{numerator}/{denominator}" if numerator else ""), ""
    if kind in {"CD", "CE", "CV", "CO", "CS"}:
        return attr(value, "displayName") or attr(value, "code") or plain_text(value), ""
    return attr(value, "value") or plain_text(value), attr(value, "unit")


def interval(value: etree._Element) -> str:
    """An IVL as ``low-high unit``, ``>= low`` or ``<= high``; units kept per bound if unlike."""
    low, high = first(value, "v:low"), first(value, "v:high")
    low_value, high_value = attr(low, "value"), attr(high, "value")
    low_unit, high_unit = attr(low, "unit"), attr(high, "unit")
    if low_value and high_value:
        if low_unit == high_unit:
            return f"{low_value}-{high_value} {low_unit}".strip()
        return f"{low_value} {low_unit}".strip() + "-" + f"{high_value} {high_unit}".strip()
    if low_value:
        return f">= {low_value} {low_unit}".strip()
    if high_value:
        return f"<= {high_value} {high_unit}".strip()
    return ""


def period(statement: etree._Element) -> tuple[str, str]:
    """Start and end of a statement's first effectiveTime: a point gives ``(value, "")``.

    A medication's second effectiveTime is its frequency (PIVL_TS), never its period.
    """
    time = first(statement, "v:effectiveTime")
    start = attr(time, "value") or attr(first(time, "v:low"), "value")
    return start, attr(first(time, "v:high"), "value")


def comment(statement: etree._Element, narrative: Narrative) -> str:
    """The text of a statement's first FR-Commentaire-ER, ``""`` without one."""
    act = first(statement, f"v:entryRelationship/v:act[v:code/@code='{COMMENT_CODE}']")
    return narrative.text(first(act, "v:text"))


def person_or_id(assigned: etree._Element | None) -> str:
    """A professional as "Given Family" when named, else the id as ``root^extension``.

    An extension is only unique within its root, so it is never given on its own.
    """
    name = first(assigned, "v:assignedPerson/v:name")
    words = [plain_text(part) for part in _name_parts(name)]
    if any(words):
        return " ".join(word for word in words if word)
    ident = first(assigned, "v:id[@root]")
    root, extension = attr(ident, "root"), attr(ident, "extension")
    return f"{root}^{extension}" if root and extension else root


def _name_parts(name: etree._Element | None) -> list[etree._Element]:
    """Given names then family names, as the header reader orders them."""
    if name is None:
        return []
    return find(name, "v:given") + find(name, "v:family")


def product(statement: etree._Element, narrative: Narrative) -> Coded:
    """The medicine or vaccine of a substanceAdministration (or supply), named if not labelled."""
    material = first(statement, "v:consumable/v:manufacturedProduct/v:manufacturedMaterial")
    if material is None:
        material = first(statement, "v:product/v:manufacturedProduct/v:manufacturedMaterial")
    found = coded(first(material, "v:code"), narrative)
    if found.label:
        return found
    return Coded(found.code, found.system, plain_text(first(material, "v:name")))
