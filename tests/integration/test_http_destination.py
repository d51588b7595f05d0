"""The http destination against a real local HTTP server (plain and TLS with trustme
certificates): 2xx delivered, 4xx a permanent refusal quoting the reply's first bytes, 5xx and
timeouts transient; a bearer token from the environment; a client certificate."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import trustme

from engine.adapters import http_destination
from engine.adapters.http_destination import REPLY_BYTES, HttpDestination
from engine.channels.destinations import HttpDestinationConfig
from engine.errors import DestinationRejected, DestinationUnavailable
from engine.hl7v2.reader import Message
from engine.pipeline.delivery import BuildContext, Delivery

ORU = "MSH|^~\\&|LAB|LAB-A|DPI|CHU-X|20240306111154||ORU^R01|C-1|P|2.5\rPID|1||42^^^CHU-X^PI"


class Recorder(BaseHTTPRequestHandler):
    """Answers by path: /ok 200, /refuse 400 with a long text, /down 503, /slow after 2 s."""

    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Recorder.received.append((self.path, dict(self.headers.items()), body))
        if self.path == "/slow":
            time.sleep(2)
        status, reply = {
            "/ok": (200, b"ok"),
            "/refuse": (400, b"bad OBX-3 code " + b"x" * 500),
            "/down": (503, b"maintenance"),
            "/slow": (200, b"late"),
        }.get(self.path, (404, b"no such path"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    Recorder.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(httpd: ThreadingHTTPServer, path: str, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{httpd.server_address[1]}{path}"


def destination(target: str, **extra: Any) -> HttpDestination:
    config = HttpDestinationConfig.model_validate({"type": "http", "url": target, **extra})
    return http_destination.build(config, "peer", BuildContext())


def delivery(raw: bytes = ORU.encode()) -> Delivery:
    msg = Message(raw.decode())
    conn = cast(Any, None)  # a network destination never touches the transaction
    return Delivery(conn, 7, "lab", msg, raw, datetime.now(UTC))


def test_a_2xx_answer_means_delivered_and_the_body_is_the_message(
    server: ThreadingHTTPServer,
) -> None:
    dest = destination(url(server, "/ok"))
    dest.write(delivery())
    dest.close()
    [(path, headers, body)] = Recorder.received
    assert (path, body) == ("/ok", ORU.encode())
    assert headers["Content-Type"] == "application/hl7-v2; charset=utf-8"
    assert headers["Idempotency-Key"] == "lab:7"
    assert "Authorization" not in headers


def test_a_4xx_answer_is_permanent_and_quotes_only_the_first_bytes_of_the_reply(
    server: ThreadingHTTPServer,
) -> None:
    with pytest.raises(DestinationRejected) as caught:
        destination(url(server, "/refuse")).write(delivery())
    reason = caught.value.reason
    assert "answered 400: 'bad OBX-3 code xxx" in reason
    assert reason.count("x") <= REPLY_BYTES
    assert "PID" not in reason


def test_a_5xx_answer_is_transient(server: ThreadingHTTPServer) -> None:
    with pytest.raises(DestinationUnavailable, match="answered 503: 'maintenance'"):
        destination(url(server, "/down")).write(delivery())


def test_a_receiver_that_does_not_answer_in_time_is_transient(server: ThreadingHTTPServer) -> None:
    started = time.monotonic()
    with pytest.raises(DestinationUnavailable, match=r"no answer within 0\.3 s"):
        destination(url(server, "/slow"), timeout_seconds=0.3).write(delivery())
    assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_transient() -> None:
    with pytest.raises(DestinationUnavailable, match="ConnectError"):
        destination("http://127.0.0.1:9/ok", timeout_seconds=1).write(delivery())


def test_the_bearer_token_comes_from_the_named_environment_variable(
    server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_API_TOKEN", "s3cret-token")
    destination(url(server, "/ok"), bearer_token_env="LAB_API_TOKEN").write(delivery())
    assert Recorder.received[0][1]["Authorization"] == "Bearer s3cret-token"


def test_a_missing_token_variable_stops_the_build_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LAB_API_TOKEN", raising=False)
    with pytest.raises(ValueError, match="LAB_API_TOKEN"):
        destination("http://127.0.0.1:9/ok", bearer_token_env="LAB_API_TOKEN")


def test_a_cda_document_is_posted_as_xml(server: ThreadingHTTPServer) -> None:
    from engine.cda.standalone import read_standalone

    cda = next((Path(__file__).parents[1] / "samples" / "cda").rglob("*.xml")).read_bytes()
    doc = read_standalone(cda)
    conn = cast(Any, None)
    destination(url(server, "/ok")).write(Delivery(conn, 8, "docs", doc, cda, datetime.now(UTC)))
    assert Recorder.received[0][1]["Content-Type"] == "application/xml"
    assert Recorder.received[0][2] == cda


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[ThreadingHTTPServer, trustme.CA, Path]]:
    """An HTTPS server that requires a client certificate from its CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    Recorder.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield httpd, ca, ca_file
    httpd.shutdown()
    httpd.server_close()


def test_https_with_a_client_certificate_is_delivered(
    tls_server: tuple[ThreadingHTTPServer, trustme.CA, Path], tmp_path: Path
) -> None:
    httpd, ca, ca_file = tls_server
    client = ca.issue_cert("engine.example.fr")
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    tls = {"ca_file": str(ca_file), "cert_file": str(cert_file), "key_file": str(key_file)}
    destination(url(httpd, "/ok", "https"), tls=tls).write(delivery())
    assert Recorder.received[0][2] == ORU.encode()


def test_https_to_a_server_of_an_unknown_ca_is_transient_and_sends_nothing(
    tls_server: tuple[ThreadingHTTPServer, trustme.CA, Path], tmp_path: Path
) -> None:
    httpd, _, _ = tls_server
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(DestinationUnavailable, match="ConnectError"):
        destination(url(httpd, "/ok", "https"), tls={"ca_file": str(other)}).write(delivery())
    assert Recorder.received == []
