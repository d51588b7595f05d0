"""The results of a lab report (CR-BIO, TROD): one ``LabResult`` per result observation.

IHE PaLM, which the CI-SIS follows, puts results in "Laboratory Report Data Processing
Entries" (templateId 1.3.6.1.4.1.19376.1.3.1): an act whose ``entryRelationship`` holds
observations on their own or batteries (organizers) of them, organizers possibly nested
(a microbiology isolate holds its antibiogram). Only that path is walked: the report's other
observations (the attached PDF's document type, an antecedent result nested in an observation,
a comment) are not results of this report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.extract import (
    Narrative,
    body,
    coded,
    find,
    first,
    tag,
    value_and_unit,
    value_type,
)
from engine.cda.xpath import attr

#: Laboratory Report Data Processing Entry (IHE PaLM), on the entry or on its act.
LAB_ENTRY = "1.3.6.1.4.1.19376.1.3.1"


@dataclass(frozen=True, slots=True)
class LabResult:
    """One result. Values are as written (HL7 TS dates, UCUM units); absent ones are ``""``."""

    code: str  # observation/code/@code (LOINC in the CI-SIS)
    code_system: str
    label: str  # code/@displayName, else its originalText
    value: str  # a PQ's number, a coded value's label (else its code), an ST's text
    unit: str  # a PQ's unit
    value_type: str  # value/@xsi:type: PQ, ST, CD...
    reference_range: str  # "low-high unit", ">= low", "<= high", or the range's text
    interpretation: str  # interpretationCode/@code: N, L, H...
    observed_at: str  # effectiveTime/@value (or its low)
    status: str  # statusCode/@code
    panel_code: str  # the battery (organizer) holding the result, "" when none
    panel_label: str


def lab_results(root: etree._Element) -> list[LabResult]:
    """Every result of the lab entries of a parsed ``ClinicalDocument``, in document order."""
    structured = body(root)
    if structured is None:
        return []
    narrative = Narrative(root)
    acts = find(
        structured,
        f".//v:entry[v:templateId/@root='{LAB_ENTRY}']/v:act"
        f" | .//v:act[v:templateId/@root='{LAB_ENTRY}']",
    )
    return [
        result
        for act in acts
        for part in find(act, "v:entryRelationship/v:observation | v:entryRelationship/v:organizer")
        for result in _results(part, None, narrative)
    ]


def _results(
    element: etree._Element, panel: etree._Element | None, narrative: Narrative
) -> Iterator[LabResult]:
    """The results at and under ``element``; each belongs to the nearest organizer above it."""
    if element.tag == tag("observation"):
        yield _result(element, panel, narrative)
        return
    for part in find(element, "v:component/v:observation | v:component/v:organizer"):
        yield from _results(part, element, narrative)


def _result(
    observation: etree._Element, panel: etree._Element | None, narrative: Narrative
) -> LabResult:
    what = coded(first(observation, "v:code"), narrative)
    battery = coded(first(panel, "v:code"), narrative)
    value = first(observation, "v:value")
    text, unit = value_and_unit(value)
    time = first(observation, "v:effectiveTime")
    return LabResult(
        code=what.code,
        code_system=what.system,
        label=what.label,
        value=text,
        unit=unit,
        value_type=value_type(value),
        reference_range=_reference_range(observation, narrative),
        interpretation=attr(first(observation, "v:interpretationCode"), "code"),
        observed_at=attr(time, "value") or attr(first(time, "v:low"), "value"),
        status=attr(first(observation, "v:statusCode"), "code"),
        panel_code=battery.code,
        panel_label=battery.label,
    )


def _reference_range(observation: etree._Element, narrative: Narrative) -> str:
    """The first reference range: its interval, else its other value, else its text."""
    observed = first(observation, "v:referenceRange/v:observationRange")
    rendered = " ".join(part for part in value_and_unit(first(observed, "v:value")) if part)
    return rendered or narrative.text(first(observed, "v:text"))
