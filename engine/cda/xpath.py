"""XPath on CDA trees, compiled once per expression (a string expression is compiled again at
every ``element.xpath`` call, which cost more than the query on a 135 KB document)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

CDA_NS = "urn:hl7-org:v3"
NS = {"v": CDA_NS}
CLINICAL_DOCUMENT = f"{{{CDA_NS}}}ClinicalDocument"


@lru_cache(maxsize=1024)
def compiled(path: str) -> etree.XPath:
    """``path`` compiled, with the CDA namespace as prefix ``v``."""
    return etree.XPath(path, namespaces=NS)


def select(element: etree._Element, path: str) -> Any:
    """What ``path`` selects from ``element``: a list of nodes or strings, or a value."""
    return compiled(path)(element)


def first_of(element: etree._Element, path: str) -> etree._Element | None:
    """The first node ``path`` selects, None when there is none."""
    found = select(element, f"({path})[1]")
    return found[0] if found else None


def attr(element: etree._Element | None, name: str) -> str:
    """An attribute, stripped; ``""`` when absent (a nullFlavor element has no value)."""
    return "" if element is None else str(element.get(name) or "").strip()
