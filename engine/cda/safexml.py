"""Safe parsing of CDA R2 XML: no DOCTYPE, no entities, no network, no file, bounded size and depth.

A CDA document never needs a document type declaration, so any DOCTYPE is refused, and refused
*before* libxml2 reads its internal subset: no entity is ever declared, which closes billion
laughs, quadratic blowup, external and parameter entities and DTD fetches at once. The tree
parser is hardened anyway (no entity expansion, no DTD loading, no network); XInclude is never
processed. Reasons name the line but never quote the document: it may carry patient data.
"""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.xpath import select
from engine.errors import DocumentError

MAX_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 200
_CHUNK = 64 * 1024
_RESOURCE_LIMIT = 114  # XML_ERR_RESOURCE_LIMIT: over 256 deep, or a text/attribute over 10 MB
_NO_DOCTYPE = "a DOCTYPE is not allowed in a CDA document"


def parse_document(
    data: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> etree._Element:
    """The root element of a serialized CDA document; DocumentError when it is unsafe or broken.

    ``max_depth`` above 256 has no effect: libxml2 refuses deeper documents itself.
    """
    if len(data) > max_bytes:
        raise DocumentError(f"document of {len(data):,} bytes exceeds the {max_bytes:,}-byte limit")
    try:
        _check_prolog(data)
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:  # not chained: libxml2's message may quote the document
        raise DocumentError(_syntax_reason(exc, max_depth)) from None
    if root.getroottree().docinfo.doctype:  # the prolog check refused it already: belt and braces
        raise DocumentError(_NO_DOCTYPE)
    _check_depth(root, max_depth)
    return root


def _parser(target: object = None) -> etree.XMLParser:
    """A hardened parser; a new one per call (lxml parsers are not shared across threads)."""
    return etree.XMLParser(
        target=target,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_pis=False,
    )


class _RootReached(Exception):
    """The root element started: no DOCTYPE can follow, the prolog is clean."""


class _PrologCheck:
    """A parser target that stops at a DOCTYPE (refused) or at the root element (accepted)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def doctype(self, name: object, pubid: object, system: object) -> None:
        raise DocumentError(f"{_NO_DOCTYPE}{_doctype_line(self.data)}")

    def start(self, tag: object, attrib: object) -> None:
        raise _RootReached

    def close(self) -> None:
        return None


def _check_prolog(data: bytes) -> None:
    """Refuse a DOCTYPE as soon as libxml2 meets it, before any declaration inside it is read.

    Fed in chunks: ``fromstring`` would go on scanning the whole buffer after the target stops.
    """
    parser = _parser(_PrologCheck(data))
    try:
        for start in range(0, len(data), _CHUNK):
            parser.feed(data[start : start + _CHUNK])
        parser.close()
    except _RootReached:
        return


def _doctype_line(data: bytes) -> str:
    """`` (line N)`` of the first ``<!DOCTYPE`` in the usual encodings, else ``""``."""
    for codec in ("utf-8", "utf-16-le", "utf-16-be"):
        at = data.find("<!DOCTYPE".encode(codec))
        if at >= 0:
            return f" (line {data.count(chr(10).encode(codec), 0, at) + 1})"
    return ""


def _syntax_reason(exc: etree.XMLSyntaxError, max_depth: int) -> str:
    line = f" (line {exc.lineno})" if exc.lineno else ""
    if exc.code != _RESOURCE_LIMIT:
        return f"the document is not well-formed XML{line}"
    if "depth" in str(exc):  # libxml2's own limit without huge_tree
        return f"elements nested over 256 deep exceed the limit of {max_depth}{line}"
    return f"a text or attribute exceeds libxml2's 10,000,000-byte limit{line}"


def _check_depth(root: etree._Element, max_depth: int) -> None:
    """Refuse elements nested deeper than ``max_depth`` (the root is depth 1): one XPath step
    per level, evaluated by libxml2 (a tenth of the cost of walking the tree in Python)."""
    deeper = select(root, "/".join(["*"] * max_depth))
    if deeper:
        raise DocumentError(
            f"elements nested {max_depth + 1} deep exceed the limit of {max_depth}"
            f" (line {deeper[0].sourceline})"
        )
