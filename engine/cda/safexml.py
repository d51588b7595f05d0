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
#: The one depth limit (the root is depth 1): intake's screen (``engine.cda.screen``) applies
#: it to the prolog and header it reads, this parse to the whole document in the pipeline;
#: libxml2 itself refuses past 256 (no ``huge_tree``) wherever the engine parses. Real CDA
#: documents nest about 15-25 deep (the CI-SIS CR-BIO sample: 15).
MAX_DEPTH = 200
_CHUNK = 64 * 1024
_RESOURCE_LIMIT = 114  # XML_ERR_RESOURCE_LIMIT: over 256 deep, or a text/attribute over 10 MB
NO_DOCTYPE = "a DOCTYPE is not allowed in a CDA document"


def parse_document(
    data: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> etree._Element:
    """The root element of a serialized CDA document; DocumentError when it is unsafe or broken.

    ``max_depth`` above 256 has no effect: libxml2 refuses deeper documents itself.
    """
    if len(data) > max_bytes:
        raise DocumentError(f"document of {len(data):,} bytes exceeds the {max_bytes:,}-byte limit")
    root, problem = _parse(data, max_depth)
    if root is None:
        raise DocumentError(problem)
    return root


def _parse(data: bytes, max_depth: int) -> tuple[etree._Element | None, str]:
    """The root, or None and why. It returns rather than raises: an exception's traceback keeps
    the frames it left, and a frame holding a refused tree (hundreds of MB for a large document)
    would stay alive as long as the exception, in reference cycles only a full collection frees."""
    try:
        problem = _prolog_problem(data)
        if problem:
            return None, problem
        root = etree.fromstring(data, hardened_parser())
    except etree.XMLSyntaxError as exc:  # its message may quote the document: not kept
        return None, _syntax_reason(exc, max_depth)
    if root.getroottree().docinfo.doctype:  # the prolog check refused it already: belt and braces
        return None, NO_DOCTYPE
    return (None, problem) if (problem := _depth_problem(root, max_depth)) else (root, "")


def hardened_parser(target: object = None) -> etree.XMLParser:
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


class _DoctypeFound(Exception):
    """A DOCTYPE: refused before libxml2 reads its internal subset."""


class _PrologCheck:
    """A parser target that stops at a DOCTYPE or at the root element (a clean prolog)."""

    def doctype(self, name: object, pubid: object, system: object) -> None:
        raise _DoctypeFound

    def start(self, tag: object, attrib: object) -> None:
        raise _RootReached

    def close(self) -> None:
        return None


def _prolog_problem(data: bytes) -> str:
    """Refuse a DOCTYPE as soon as libxml2 meets it, before any declaration inside it is read.

    Fed in chunks: ``fromstring`` would go on scanning the whole buffer after the target stops.
    """
    parser = hardened_parser(_PrologCheck())
    try:
        for start in range(0, len(data), _CHUNK):
            parser.feed(data[start : start + _CHUNK])
        parser.close()
    except _RootReached:
        pass
    except _DoctypeFound:
        return f"{NO_DOCTYPE}{doctype_line(data)}"
    finally:
        # The parser keeps the exception its target raised, whose traceback holds this frame,
        # which holds the parser: a cycle that would keep ``data`` until a full collection.
        del parser
    return ""


def doctype_line(data: bytes) -> str:
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


def _depth_problem(root: etree._Element, max_depth: int) -> str:
    """Elements nested deeper than ``max_depth`` (the root is depth 1), else ``""``: one XPath
    step per level, evaluated by libxml2 (a tenth of the cost of walking the tree in Python)."""
    deeper = select(root, "/".join(["*"] * max_depth))
    if not deeper:
        return ""
    return (
        f"elements nested {max_depth + 1} deep exceed the limit of {max_depth}"
        f" (line {deeper[0].sourceline})"
    )
