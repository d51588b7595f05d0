"""The medical summary of a VSM, an IPS-FR or a vaccination document, entry by entry.

Sections are told apart by their LOINC code, not their templateIds, which differ between the
VSM, IPS-FR and VAC models for the same content. A subsection whose code is not listed takes
its parent's kind. The VSM groups risk factors and history: its "Facteurs de risque" section
(57207-3) holds the social (29762-2), occupational (10161-8) and family (10157-6) history;
past illnesses (11348-0) and past procedures (47519-4) are history too, so all count as
``risk_factor``; ``problem`` is the active problem list only.

A concern (the act wrapping a problem or an allergy) gives one entry per observation it is
about; a family history organizer one per observation of the relative. "No known ..."
entries (IPS) are kept: they state an absence, which a summary must show.

A CNAM-HR document has medication and vaccination sections too, but they are claims, not
treatments the patient is known to take: ``engine.cda.extract_remb`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.extract import (
    Coded,
    Narrative,
    body,
    coded,
    comment,
    find,
    first,
    is_reimbursement_history,
    period,
    product,
    section_code,
    statements,
    tag,
    value_and_unit,
    value_type,
)

SECTION_KINDS: dict[str, str] = {
    "11450-4": "problem",  # active problems
    "48765-2": "allergy",  # allergies and intolerances
    "10160-0": "treatment",  # medications
    "11369-6": "vaccination",  # immunizations
    "57207-3": "risk_factor",  # VSM "Facteurs de risque" (holds the next three)
    "29762-2": "risk_factor",  # social history: tobacco, alcohol, drugs
    "10161-8": "risk_factor",  # occupational risk factors
    "10157-6": "risk_factor",  # family history
    "11348-0": "risk_factor",  # history of past illness
    "47519-4": "risk_factor",  # history of procedures (surgical history)
}
#: An allergy's substance (the consumable participant).
_AGENT = "v:participant[@typeCode='CSM']/v:participantRole/v:playingEntity/v:code"
_CODED_TYPES = frozenset({"CD", "CE", "CV", "CO", "CS"})


@dataclass(frozen=True, slots=True)
class SummaryEntry:
    """One problem, allergy, treatment, vaccination or risk factor; absent values are ``""``."""

    kind: str  # "problem", "allergy", "treatment", "vaccination" or "risk_factor"
    code: str  # what the entry is about: the diagnosis, allergen, product, vaccine...
    code_system: str
    label: str  # displayName, else the originalText
    start: str  # effectiveTime/low (or its value), HL7 TS as written
    end: str  # effectiveTime/high
    text: str  # comment, else an uncoded value ("25 {pack}/a"), else the entry's own text


def summary_entries(root: etree._Element) -> list[SummaryEntry]:
    """The summary entries of a parsed ``ClinicalDocument``, in document order."""
    structured = body(root)
    if structured is None or is_reimbursement_history(root):
        return []
    narrative = Narrative(root)
    entries: list[SummaryEntry] = []
    for section in structured.iter(tag("section")):
        kind = _kind(section)
        if kind:
            for statement in statements(section):
                entries += [
                    _entry(kind, element, outer, narrative) for element, outer in _units(statement)
                ]
    return entries


def _kind(section: etree._Element) -> str:
    """The kind of the section's own code, else of the nearest listed section above it."""
    for enclosing in reversed(find(section, "ancestor-or-self::v:section")):
        kind = SECTION_KINDS.get(section_code(enclosing), "")
        if kind:
            return kind
    return ""


def _units(statement: etree._Element) -> list[tuple[etree._Element, etree._Element | None]]:
    """The statements that make one entry each, with the concern or organizer around them."""
    if statement.tag == tag("act"):
        inner = find(statement, "v:entryRelationship[@typeCode='SUBJ']/v:observation")
    elif statement.tag == tag("organizer"):
        inner = find(statement, "v:component/v:observation")
    else:
        inner = []
    if not inner:
        return [(statement, None)]
    return [(element, statement) for element in inner]


def _entry(
    kind: str, element: etree._Element, outer: etree._Element | None, narrative: Narrative
) -> SummaryEntry:
    """One entry; its own dates first, the concern's when it has none (an allergy's onset)."""
    what = _what(element, narrative)
    start, end = period(element)
    outer_start, outer_end = period(outer) if outer is not None else ("", "")
    return SummaryEntry(
        kind=kind,
        code=what.code,
        code_system=what.system,
        label=what.label,
        start=start or outer_start,
        end=end or outer_end,
        text=_text(element, narrative),
    )


def _what(element: etree._Element, narrative: Narrative) -> Coded:
    """What an entry is about.

    A medication or vaccination: its product. An observation: its agent (an allergy's
    substance), else its coded value (the diagnosis: the code only says "diagnosis"), else
    its code (a tobacco use whose value is a quantity). Anything else: its code.
    """
    if element.tag in (tag("substanceAdministration"), tag("supply")):
        return product(element, narrative)
    if element.tag == tag("observation"):
        agent = coded(first(element, _AGENT), narrative)
        if agent.code:
            return agent
        value = first(element, "v:value")
        if value_type(value) in _CODED_TYPES and coded(value, narrative).code:
            return coded(value, narrative)
    return coded(first(element, "v:code"), narrative)


def _text(element: etree._Element, narrative: Narrative) -> str:
    """A comment, else an uncoded value with its unit, else the entry's narrative text."""
    note = comment(element, narrative)
    if note:
        return note
    value = first(element, "v:value")
    if value is not None and value_type(value) not in _CODED_TYPES:
        rendered = " ".join(part for part in value_and_unit(value) if part)
        if rendered:
            return rendered
    return narrative.text(first(element, "v:text"))
