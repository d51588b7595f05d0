"""The items of a CNAM-HR reimbursement history (DOMAIN.md §5), one ``Reimbursement`` each.

The section's LOINC code gives the category. The Assurance Maladie codes medicines, vaccines
and devices only in ``translation`` elements (CIP or UCD first, then ATC and active
components), leaving ``code`` itself empty: the first coded translation is the item. A hospital
stay is coded ``IMP`` with its GHS as a qualifier, which is what was paid for.

Dispensed items (medicines, vaccines, devices) are dated by their delivery
(``supply/performer/time``), which is what the claim records; the period of use the entry may
also carry is mostly unknown (``nullFlavor="UNK"``). Stays and procedures are dated by their
``effectiveTime``.

A section with nothing to report (the "sans-info" variant) still carries one placeholder entry,
coded in the "absent or unknown" system or timed ``nullFlavor="NA"`` (no such act): those are
left out, so a history without claims gives no item.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.extract import (
    Coded,
    Narrative,
    body,
    coded,
    find,
    first,
    is_reimbursement_history,
    period,
    person_or_id,
    product,
    section_code,
    statements,
    tag,
)
from engine.cda.xpath import attr

SECTION_CATEGORIES: dict[str, str] = {
    "10160-0": "medicine",
    "11369-6": "vaccination",
    "46264-8": "device",
    "46240-8": "encounter",
    "29554-3": "procedure",
}
#: HL7 "absent or unknown" codes (no-known-medications, no-known-procedures...).
ABSENT_OR_UNKNOWN = "2.16.840.1.113883.5.1150.1"


@dataclass(frozen=True, slots=True)
class Reimbursement:
    """One reimbursed item; absent values are ``""``."""

    category: str  # "medicine", "vaccination", "device", "encounter" or "procedure"
    code: str  # CIP/UCD, LPP, GHS, NGAP, CCAM or NABM code
    code_system: str
    label: str
    date: str  # delivery date, else the act's date (a stay's start), HL7 TS as written
    quantity: str  # delivered quantity (with its unit, if any)
    prescriber: str  # the prescriber's "Given Family", else id root^extension


def reimbursements(root: etree._Element) -> list[Reimbursement]:
    """The reimbursed items of a parsed CNAM-HR ``ClinicalDocument``, in document order.

    Any other document gives none: a VSM's treatments are not claims.
    """
    structured = body(root)
    if structured is None or not is_reimbursement_history(root):
        return []
    narrative = Narrative(root)
    items: list[Reimbursement] = []
    for section in structured.iter(tag("section")):
        category = SECTION_CATEGORIES.get(section_code(section), "")
        for statement in statements(section) if category else []:
            what = _item(statement, narrative)
            if not _is_placeholder(statement, what):
                items.append(_reimbursement(category, statement, what))
    return items


def _reimbursement(category: str, statement: etree._Element, what: Coded) -> Reimbursement:
    supply = _supply(statement)
    quantity = first(supply, "v:quantity")
    author = first(supply, "v:author/v:assignedAuthor")
    if author is None:
        author = first(statement, "v:author/v:assignedAuthor")
    return Reimbursement(
        category=category,
        code=what.code,
        code_system=what.system,
        label=what.label,
        date=attr(first(supply, "v:performer/v:time"), "value") or period(statement)[0],
        quantity=f"{attr(quantity, 'value')} {attr(quantity, 'unit')}".strip(),
        prescriber=person_or_id(author),
    )


def _item(statement: etree._Element, narrative: Narrative) -> Coded:
    """What was paid for: the product, the device, the stay's GHS or the act."""
    if statement.tag == tag("substanceAdministration"):
        return product(statement, narrative)
    if statement.tag == tag("supply"):
        device = first(statement, "v:participant/v:participantRole/v:playingDevice/v:code")
        return coded(device, narrative) if device is not None else product(statement, narrative)
    qualified = first(statement, "v:code/v:qualifier/v:value[@code]")
    return coded(qualified if qualified is not None else first(statement, "v:code"), narrative)


def _supply(statement: etree._Element) -> etree._Element | None:
    """The dispensing of a medicine or vaccine (its REFR supply), or the device's own supply."""
    if statement.tag == tag("supply"):
        return statement
    return first(statement, "v:entryRelationship/v:supply")


def _is_placeholder(statement: etree._Element, what: Coded) -> bool:
    """The entry a section without claims carries: "no known ..." or an act timed "NA"."""
    systems = {what.system, attr(first(statement, "v:code"), "codeSystem")}
    timed_na = find(
        statement, "v:effectiveTime[@nullFlavor='NA'] | v:effectiveTime/v:low[@nullFlavor='NA']"
    )
    return ABSENT_OR_UNKNOWN in systems or bool(timed_na)
