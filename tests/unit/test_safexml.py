"""Safe CDA XML parsing (engine.cda.safexml): every XML attack is a quick, clear DocumentError.

Each attack is timed: one second is a safety bound (a bomb that expanded would take far longer
or never end), not a benchmark.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from lxml import etree

from engine.cda import safexml
from engine.cda.safexml import MAX_BYTES, MAX_DEPTH, parse_document
from engine.errors import DocumentError, PermanentError
from tests.sample_files import CDA_SAMPLES

TSH_1 = CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
SECRET = "SECRET-FROM-DISK-4242"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'

LAUGHS = (
    XML_DECL
    + '<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">\n' for i in range(1, 10)
    )
    + "]>\n<lolz>&lol9;</lolz>\n"
)


def refused(data: bytes, **limits: int) -> DocumentError:
    """The DocumentError ``parse_document`` raises, checked to come in under a second."""
    started = time.monotonic()
    with pytest.raises(DocumentError) as caught:
        parse_document(data, **limits)
    assert time.monotonic() - started < 1.0
    return caught.value


def assert_secret_absent(error: BaseException) -> None:
    for text in (error.args, str(error), repr(error), error.__cause__, error.__context__):
        assert SECRET not in str(text)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


class _Recorder(BaseHTTPRequestHandler):
    contacted: list[str]

    def do_GET(self) -> None:
        self.contacted.append(self.path)
        body = b'<!ENTITY leak "FETCHED">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def dtd_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server on a free port; yields its base URL and the paths it was asked for."""
    contacted: list[str] = []
    handler = type("Handler", (_Recorder,), {"contacted": contacted})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", contacted
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- documents that are accepted -------------------------------------------------------------


def test_the_ans_tsh_sample_parses_to_its_clinical_document() -> None:
    root = parse_document(TSH_1.read_bytes())

    assert root.tag == "{urn:hl7-org:v3}ClinicalDocument"
    assert root.find("{urn:hl7-org:v3}recordTarget") is not None


@pytest.mark.parametrize("path", sorted(CDA_SAMPLES.glob("*.xml")), ids=lambda p: p.name)
def test_every_ci_sis_sample_parses(path: Path) -> None:
    assert parse_document(path.read_bytes()).tag == "{urn:hl7-org:v3}ClinicalDocument"


def test_comments_and_processing_instructions_before_the_root_are_kept() -> None:
    data = f'{XML_DECL}<!-- c -->\n<?xml-stylesheet href="cda.xsl"?>\n<a><!-- in --></a>'.encode()

    root = parse_document(data)

    assert root.getprevious().target == "xml-stylesheet"
    assert etree.tostring(root) == b"<a><!-- in --></a>"


def test_a_utf16_document_without_doctype_parses() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?>\n<a>é</a>'.encode("utf-16")

    assert parse_document(data).text == "é"


def test_a_document_at_the_depth_limit_parses() -> None:
    data = ("<a>" * MAX_DEPTH + "</a>" * MAX_DEPTH).encode()

    assert parse_document(data).tag == "a"


# --- entity attacks: any DOCTYPE is refused before its declarations are read -----------------


def test_billion_laughs_is_refused_as_a_doctype() -> None:
    error = refused(LAUGHS.encode())

    assert error.reason == "a DOCTYPE is not allowed in a CDA document (line 2)"
    assert "lol" not in error.reason


def test_billion_laughs_in_an_attribute_is_refused() -> None:
    error = refused(LAUGHS.replace("<lolz>&lol9;</lolz>", '<lolz a="&lol9;"/>').encode())

    assert "DOCTYPE is not allowed" in error.reason


def test_quadratic_blowup_is_refused() -> None:
    entity = "A" * 50_000
    data = f'<!DOCTYPE x [<!ENTITY a "{entity}">]>\n<x>{"&a;" * 50_000}</x>'.encode()

    error = refused(data)

    assert error.reason == "a DOCTYPE is not allowed in a CDA document (line 1)"


@pytest.mark.parametrize("where", ["text", "attribute"])
def test_an_external_entity_to_a_local_file_is_refused_without_reading_it(
    secret_file: Path, where: str
) -> None:
    use = "<x>&xxe;</x>" if where == "text" else '<x a="&xxe;"/>'
    data = f'{XML_DECL}<!DOCTYPE x [<!ENTITY xxe SYSTEM "{secret_file.as_uri()}">]>{use}'.encode()

    error = refused(data)

    assert "DOCTYPE is not allowed" in error.reason
    assert_secret_absent(error)


def test_an_external_dtd_is_refused_without_reading_it(secret_file: Path) -> None:
    error = refused(f'<!DOCTYPE x SYSTEM "{secret_file.as_uri()}">\n<x/>'.encode())

    assert "DOCTYPE is not allowed" in error.reason
    assert_secret_absent(error)


@pytest.mark.parametrize(
    "subset",
    [
        '<!DOCTYPE x SYSTEM "{base}/x.dtd">',
        '<!DOCTYPE x PUBLIC "-//X//DTD X//EN" "{base}/x.dtd">',
        '<!DOCTYPE x [<!ENTITY % dtd SYSTEM "{base}/x.dtd"> %dtd;]>',
        '<!DOCTYPE x [<!ENTITY e SYSTEM "{base}/x.dtd">]>',
    ],
    ids=["system-dtd", "public-dtd", "parameter-entity", "general-entity"],
)
def test_a_dtd_or_entity_url_is_refused_without_contacting_it(
    dtd_server: tuple[str, list[str]], subset: str
) -> None:
    base, contacted = dtd_server
    data = f"{XML_DECL}{subset.format(base=base)}\n<x/>".encode()

    error = refused(data)

    assert "DOCTYPE is not allowed" in error.reason
    assert contacted == []
    with urllib.request.urlopen(f"{base}/control", timeout=5) as response:  # the recorder works
        response.read()
    assert contacted == ["/control"]


def test_parameter_entities_are_refused_without_reading_their_file(secret_file: Path) -> None:
    subset = (
        f'<!ENTITY % file SYSTEM "{secret_file.as_uri()}">'
        "<!ENTITY % wrap \"<!ENTITY &#x25; leak SYSTEM 'file:///%file;'>\">"
        "%wrap; %leak;"
    )
    error = refused(f"{XML_DECL}<!DOCTYPE x [{subset}]>\n<x/>".encode())

    assert error.reason == "a DOCTYPE is not allowed in a CDA document (line 2)"
    assert_secret_absent(error)


def test_a_doctype_after_comments_and_processing_instructions_is_refused() -> None:
    data = f"{XML_DECL}<!-- one -->\n<?pi two?>\n<!DOCTYPE x>\n<x/>".encode()

    assert refused(data).reason == "a DOCTYPE is not allowed in a CDA document (line 4)"


def test_a_lowercase_doctype_is_refused_as_not_xml() -> None:
    assert "not well-formed" in refused(b"<!doctype x>\n<x/>").reason


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_document_with_a_doctype_is_refused(codec: str) -> None:
    declared = "UTF-16" if codec == "utf-16" else codec.upper()
    text = (
        f'<?xml version="1.0" encoding="{declared}"?>\n<!DOCTYPE x [<!ENTITY e "E">]>\n<x>&e;</x>'
    )

    error = refused(text.encode(codec))

    assert error.reason == "a DOCTYPE is not allowed in a CDA document (line 2)"


def test_the_tree_parser_alone_neither_expands_nor_fetches_entities(
    secret_file: Path, dtd_server: tuple[str, list[str]]
) -> None:
    """Second line of defence: even past the DOCTYPE check, nothing is expanded or fetched."""
    base, contacted = dtd_server
    subsets = [
        f'<!ENTITY e SYSTEM "{secret_file.as_uri()}">',
        '<!ENTITY e "AAAAAAAAAA">',
        f'<!ENTITY e SYSTEM "{base}/e.xml">',
        f'<!ENTITY % p SYSTEM "{base}/p.dtd"> %p; <!ENTITY e "">',
    ]
    for subset in subsets:
        started = time.monotonic()
        root = etree.fromstring(
            f"<!DOCTYPE x [{subset}]><x>&e;</x>".encode(), safexml.hardened_parser()
        )
        assert time.monotonic() - started < 1.0
        assert etree.tostring(root) == b"<x>&e;</x>"  # an unexpanded reference
    permissive = etree.XMLParser(resolve_entities=True)  # control: the attack is real
    leaked = etree.fromstring(f"<!DOCTYPE x [{subsets[0]}]><x>&e;</x>".encode(), permissive)
    assert leaked.text == SECRET
    system = f'<!DOCTYPE x SYSTEM "{base}/x.dtd"><x/>'
    assert etree.fromstring(system.encode(), safexml.hardened_parser()).tag == "x"
    assert contacted == []
    started = time.monotonic()
    with pytest.raises(etree.XMLSyntaxError):  # libxml2's entity amplification limit
        etree.fromstring(LAUGHS.encode(), safexml.hardened_parser())
    assert time.monotonic() - started < 1.0


# --- XInclude --------------------------------------------------------------------------------


def test_an_xinclude_element_is_not_processed(secret_file: Path) -> None:
    data = (
        '<x xmlns:xi="http://www.w3.org/2001/XInclude">'
        f'<xi:include href="{secret_file.as_uri()}" parse="text"/></x>'
    ).encode()
    started = time.monotonic()

    root = parse_document(data)

    assert time.monotonic() - started < 1.0
    assert SECRET not in etree.tostring(root).decode()
    assert root[0].tag == "{http://www.w3.org/2001/XInclude}include"


# --- size and depth --------------------------------------------------------------------------


def test_a_document_over_the_size_limit_is_refused_before_parsing() -> None:
    error = refused(b" " * 25_000_000)

    assert error.reason == "document of 25,000,000 bytes exceeds the 20,971,520-byte limit"
    assert MAX_BYTES == 20_971_520


def test_the_size_limit_can_be_lowered() -> None:
    error = refused(b"<a>" + b"x" * 100 + b"</a>", max_bytes=100)

    assert error.reason == "document of 107 bytes exceeds the 100-byte limit"


def test_elements_nested_too_deep_are_refused_naming_the_line() -> None:
    depth = MAX_DEPTH + 1
    data = ("<a>\n" * depth + "</a>" * depth).encode()

    error = refused(data)

    assert error.reason == f"elements nested {depth} deep exceed the limit of 200 (line {depth})"


def test_the_depth_limit_can_be_lowered_and_ignores_comments() -> None:
    assert parse_document(b"<a><b><!-- c --><?p?></b></a>", max_depth=2).tag == "a"
    assert refused(b"<a><b><c/></b></a>", max_depth=2).reason == (
        "elements nested 3 deep exceed the limit of 2 (line 1)"
    )


def test_nesting_past_libxml2s_own_limit_is_a_depth_error() -> None:
    error = refused(("<a>" * 10_000 + "</a>" * 10_000).encode())

    assert error.reason == "elements nested over 256 deep exceed the limit of 200 (line 1)"


# --- not XML ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"MSH|^~\\&|APP|FAC\rPID|||123^^^H||PAT-TROIS^DOMINIQUE",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b'{"resourceType": "Patient", "name": "PAT-TROIS"}',
        b"<a><b></a>",
        b"<a/><b/>",
        b"\xff\xfe\x00",
    ],
    ids=["empty", "hl7v2", "pdf", "json", "unbalanced", "two-roots", "garbage"],
)
def test_bytes_that_are_not_xml_are_refused(data: bytes) -> None:
    error = refused(data)

    assert error.reason.startswith("the document is not well-formed XML")
    assert "PAT-TROIS" not in error.reason


def test_a_malformed_document_is_refused_naming_the_line_without_quoting_it() -> None:
    data = f'{XML_DECL}<doc>\n<family qualifier="BR">PAT-TROIS</famille>\n</doc>'.encode()

    error = refused(data)

    assert error.reason == "the document is not well-formed XML (line 3)"
    assert error.__cause__ is None
    assert error.__context__ is None  # libxml2's message may quote the document


def test_document_error_is_a_permanent_error_refused_with_ar() -> None:
    error = refused(b"not xml")

    assert isinstance(error, PermanentError)
    assert (error.code, error.ack_code, error.transient) == ("invalid_document", "AR", False)
