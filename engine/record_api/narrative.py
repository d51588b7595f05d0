"""A CDA's narrative body as safe HTML: the CDA narrative block's elements mapped to a short
list of HTML tags, every text escaped, every attribute dropped (so no script, style, link or
external reference survives); a level-1 document (PDF body) says so."""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped, unused-ignore]
from markupsafe import Markup, escape

from engine.cda.safexml import parse_document
from engine.errors import DocumentError

V3 = "{urn:hl7-org:v3}"
#: CDA narrative elements -> HTML tags; anything else keeps only its text.
TAGS = {
    "paragraph": "p",
    "list": "ul",
    "item": "li",
    "table": "table",
    "thead": "thead",
    "tbody": "tbody",
    "tr": "tr",
    "th": "th",
    "td": "td",
    "caption": "caption",
    "br": "br",
    "sub": "sub",
    "sup": "sup",
}
_SKIP = {"renderMultiMedia", "footnoteRef"}


def narrative_html(content: bytes) -> Markup:
    """The sections' titles and narrative text of a CDA, as escaped HTML."""
    try:
        root = parse_document(content)
    except DocumentError:  # a stored document that no longer parses is shown as such
        return Markup("<p><em>This document cannot be displayed.</em></p>")
    if root.find(f"{V3}component/{V3}nonXMLBody") is not None:
        return Markup("<p><em>Level 1 document (PDF body): download it through the API.</em></p>")
    out: list[Markup] = []
    for section in root.iter(f"{V3}section"):
        title = section.find(f"{V3}title")
        text = section.find(f"{V3}text")
        if title is not None and (title.text or "").strip():
            out.append(Markup("<h3>") + escape("".join(title.itertext()).strip()) + Markup("</h3>"))
        if text is not None:
            out.append(_render(text, top=True))
    return Markup("").join(out) or Markup("<p><em>No narrative text.</em></p>")


def _render(element: etree._Element, top: bool = False) -> Markup:
    tail = Markup("") if top else escape(element.tail or "")
    if not isinstance(element.tag, str) or etree.QName(element).localname in _SKIP:
        return tail
    tag = TAGS.get(etree.QName(element).localname)
    inner = escape(element.text or "") + Markup("").join(_render(child) for child in element)
    if tag == "br":
        html = Markup("<br>")
    elif tag:
        html = Markup(f"<{tag}>") + inner + Markup(f"</{tag}>")
    else:  # an element with no HTML counterpart (content, linkHtml...): its text only
        html = Markup("<div>") + inner + Markup("</div>") if top else inner
    return html + tail
