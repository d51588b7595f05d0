"""The cheap look intake takes at a CDA before the ACK: what could hurt the engine is refused,
nothing more (issue 11).

Intake refuses a document that is over the size limit, is not XML at all, has a DOCTYPE (so
no entity can ever be declared), has another root than ``ClinicalDocument``, or nests elements
deeper than :data:`engine.cda.safexml.MAX_DEPTH` in the part it reads. It reads the prolog
and the header up to the ``recordTarget`` (a few KB of a 135 KB report; never past the body's
start nor ``MAX_ELEMENTS``), with the same hardened libxml2 parser as the pipeline, and keeps
a tree of the root's ``id``, ``code`` and ``recordTarget`` only. Well-formedness of the
rest, the schema and the CI-SIS rules are the pipeline's: a document failing them becomes a
dead letter there (``engine.cda.safexml.parse_document``, which enforces the same depth limit
over the whole document, with libxml2's own cap of 256 behind both).

Reasons name the line but never quote the document: it may carry patient data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.safexml import MAX_BYTES, MAX_DEPTH, NO_DOCTYPE, doctype_line, hardened_parser
from engine.cda.xpath import CDA_NS, CLINICAL_DOCUMENT
from engine.errors import DocumentError

#: Bytes fed to the parser at a time: libxml2 parses a whole piece before the target can stop
#: it, and a CI-SIS header ends within a few KB (the 135 KB CR-BIO's recordTarget at 5.4 KB:
#: 0.24 ms with 2 KB pieces, 0.6 ms with 16 KB ones).
CHUNK = 2048
_RESOURCE_LIMIT = 114  # XML_ERR_RESOURCE_LIMIT: libxml2's own depth cap (256)
#: The header elements intake needs (the id for MSA-2, the type, the patient).
_NEEDED = frozenset({f"{{{CDA_NS}}}id", f"{{{CDA_NS}}}code", f"{{{CDA_NS}}}recordTarget"})
_RECORD_TARGET = f"{{{CDA_NS}}}recordTarget"
_BODY = f"{{{CDA_NS}}}component"
#: Elements read at most: a CI-SIS header holds about a hundred (the CR-BIO's: 57 up to
#: the end of its recordTarget); past this, what is not read is the pipeline's.
MAX_ELEMENTS = 2000


class _Stop(Exception):
    """The header is read: nothing more is needed from this document."""


class _Refused(Exception):
    """The document is refused for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _HeaderTarget:
    """A parser target that keeps the root and its ``id``, ``code`` and ``recordTarget``
    children (text left out: what intake needs is in attributes) and stops at the first
    child after the ``recordTarget`` once all three were read, at the body (``component``),
    or after ``MAX_ELEMENTS``: the tree stays small whatever the document. It refuses a
    DOCTYPE as soon as libxml2 meets it (before any declaration inside it is read), another
    root, and nesting over ``max_depth``."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.builder = etree.TreeBuilder()
        self.root: etree._Element | None = None
        self.depth = 0
        self.elements = 0
        self.kept = False  # inside a kept child of the root
        self.seen: set[str] = set()

    def doctype(self, name: object, pubid: object, system: object) -> None:
        raise _Refused(NO_DOCTYPE)

    def start(self, tag: str, attrib: dict[str, str], nsmap: object = None) -> None:
        self.depth += 1
        self.elements += 1
        if self.depth > self.max_depth:
            limit = self.max_depth
            raise _Refused(f"elements nested {self.depth} deep exceed the limit of {limit}")
        if self.root is None:
            if tag != CLINICAL_DOCUMENT:
                name = tag.rpartition("}")[2]
                raise _Refused(f"the XML root element is {name!r}, not a CDA ClinicalDocument")
            self.root = self.builder.start(tag, attrib, nsmap)
            return
        if self.depth == 2:
            if self.seen >= _NEEDED and tag != _RECORD_TARGET:
                raise _Stop
            if tag == _BODY or self.elements > MAX_ELEMENTS:
                raise _Stop
            self.kept = tag in _NEEDED
            self.seen.add(tag)
        if self.kept:
            self.builder.start(tag, attrib, nsmap)

    def end(self, tag: str) -> None:
        if self.kept or self.depth == 1:
            self.builder.end(tag)
        if self.depth == 2:
            self.kept = False
        self.depth -= 1

    def close(self) -> etree._Element | None:
        return self.root


def screen_document(
    data: bytes, *, need_header: bool = True, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> etree._Element:
    """The root of ``data`` with its ``id``, ``code`` and ``recordTarget`` children only (no
    text); DocumentError when intake must refuse it (see the module docstring).

    ``need_header``: a syntax error before the id, code and recordTarget are read refuses the
    document (a document received alone: its id is the ACK's MSA-2); without it (a CDA a
    message carries: the message says who and what) any syntax error after the root start is
    left to the pipeline."""
    return screen_chunks(
        _chunks(data), len(data), need_header=need_header, max_bytes=max_bytes, max_depth=max_depth
    )


def screen_chunks(
    chunks: Iterable[bytes],
    size: int,
    *,
    need_header: bool = True,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> etree._Element:
    """:func:`screen_document` over a document given in pieces (``size`` bytes in all), read
    only as far as needed: a carried CDA is decoded from base64 piece by piece."""
    if size > max_bytes:
        raise DocumentError(f"document of {size:,} bytes exceeds the {max_bytes:,}-byte limit")
    root, problem = _screen(chunks, max_depth, need_header)
    if root is None:
        raise DocumentError(problem)
    return root


def _screen(
    chunks: Iterable[bytes], max_depth: int, need_header: bool
) -> tuple[etree._Element | None, str]:
    """The partial root, or None and why. It returns rather than raises (see
    ``engine.cda.safexml._parse``: a traceback would keep the parser and its tree alive)."""
    target = _HeaderTarget(max_depth)
    parser = hardened_parser(target)
    first = b""
    try:
        for chunk in chunks:
            first = first or chunk
            parser.feed(chunk)
        parser.close()
    except _Stop:
        pass
    except _Refused as exc:
        where = doctype_line(first) if exc.reason == NO_DOCTYPE else ""
        return None, f"{exc.reason}{where}"
    except etree.XMLSyntaxError as exc:  # its message may quote the document: not kept
        problem = _syntax_problem(exc, target, max_depth, need_header)
        if problem:
            return None, problem
    finally:
        # The parser keeps the exception its target raised, whose traceback holds this frame;
        # and a parser with a Python target is in a reference cycle with its target context
        # (lxml): the target lets go of the tree, so that only the caller keeps it alive.
        del parser
        root, target.root, target.builder = target.root, None, etree.TreeBuilder()
    if root is None:  # an empty document: libxml2 says so at close
        return None, "the payload is not XML"
    return root, ""


def _syntax_problem(
    exc: etree.XMLSyntaxError, target: _HeaderTarget, max_depth: int, need_header: bool
) -> str:
    """Why a syntax error refuses the document at intake, or ``""`` when it is the pipeline's
    to report (the root and the header intake needs were read: a broken body is kept)."""
    line = f" (line {exc.lineno})" if exc.lineno else ""
    if exc.code == _RESOURCE_LIMIT:
        if "depth" in str(exc):
            return f"elements nested over 256 deep exceed the limit of {max_depth}{line}"
        return f"a text or attribute exceeds libxml2's 10,000,000-byte limit{line}"
    if target.root is None:
        return f"the payload is not XML{line}"
    if need_header and not target.seen >= _NEEDED:
        return f"the CDA header is not well-formed XML{line}"
    return ""


def _chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]
