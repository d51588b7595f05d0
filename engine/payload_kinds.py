"""The two kinds of payload the engine journals, as the journal's columns name them.

Shared by the CDA codec and the journal, which must not import each other (LAYERS.md).
"""

from __future__ import annotations

#: The message type routes and ``accept`` lists see for a document received alone.
CDA_TYPE = "CDA"
#: The journal's charset column for a document: its XML declaration says the encoding.
XML_CHARSET = "xml"
_XML_START = (b"<", b"\xef\xbb\xbf<")


def looks_like_xml(raw: bytes) -> bool:
    """True for an XML payload (an HL7 v2 message starts with ``MSH``)."""
    return raw.lstrip(b" \t\r\n").startswith(_XML_START)
