"""Who may send to the HTTP source, over real sockets with certificates made by trustme: bearer
tokens managed like ``aiguillage senders`` does (cached, added and revoked live), HTTPS with
client certificates and allowed subjects, allowed peers, and the 403 a forged replacement of
another sender's document gets."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from engine.adapters import http_auth
from engine.security.senders import add_sender, revoke_sender
from tests.e2e.engine_process import free_port
from tests.integration.identity_harness import pid
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine
from tests.integration.test_documents_alone import INS, TSH, TSH_ID, replacement

CHANNELS = (
    ENGINE_HEAD
    + """  - name: adt
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: docs
    source: {{type: http, port: {token_port}, answer_after: processing}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: docs_mtls
    source:
      type: http
      port: {mtls_port}
      auth: mtls
      tls:
        cert_file: {cert}
        key_file: {key}
        client_ca_file: {ca}
        allowed_subjects: [lab-a.example]
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: docs_peers
    source: {{type: http, port: {peers_port}, auth: none, allowed_peers: [127.0.0.2/32]}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
"""
)
CDA = b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>"


class AuthEngine(InProcessEngine):
    def __init__(self, url: str, tmp: Path, ca: trustme.CA) -> None:
        server = ca.issue_cert("127.0.0.1", "localhost")
        server.cert_chain_pems[0].write_to_path(tmp / "server.pem")
        server.private_key_pem.write_to_path(tmp / "server.key")
        ca.cert_pem.write_to_path(tmp / "ca.pem")
        self.ports = {name: free_port() for name in ("token_port", "mtls_port", "peers_port")}
        super().__init__(
            CHANNELS,
            url=url,
            cert=tmp / "server.pem",
            key=tmp / "server.key",
            ca=tmp / "ca.pem",
            **self.ports,
        )

    def post(
        self,
        body: bytes,
        token: str = "",
        port_name: str = "token_port",
        context: ssl.SSLContext | None = None,
        source: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str], dict[str, object]]:
        headers = {"Content-Type": "application/xml"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        port = self.ports[port_name]
        conn: http.client.HTTPConnection
        if context is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, 10, (source, 0))
        else:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        try:
            conn.request("POST", "/documents", body, headers)
            response = conn.getresponse()
            answer = response.read()
            found = {k.lower(): v for k, v in response.getheaders()}
            return response.status, found, json.loads(answer) if answer else {}
        finally:
            conn.close()

    def add(self, name: str, channel: str = "docs") -> str:
        with self.engine.db.begin() as conn:
            return add_sender(conn, name, channel)

    def revoke(self, name: str) -> None:
        with self.engine.db.begin() as conn:
            revoke_sender(conn, name)

    def senders(self, channel: str) -> list[tuple[object, ...]]:
        return self.rows(
            "SELECT sender, state FROM journal_messages WHERE channel = :c ORDER BY id", c=channel
        )


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def engine(
    store_url: str, tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AuthEngine]:
    monkeypatch.setattr(http_auth, "REFRESH_SECONDS", 0.2)  # revocations seen within a test
    running = AuthEngine(store_url, tmp_path, ca)
    yield running
    running.stop()


def test_without_a_valid_token_a_post_gets_401_and_nothing_is_journaled(
    engine: AuthEngine,
) -> None:
    for token in ("", "aig_not-a-token"):
        status, headers, body = engine.post(CDA, token)
        assert (status, headers["www-authenticate"], body["code"]) == (
            401,
            "Bearer",
            "unauthorized",
        )
    engine.add("lab", channel="docs_peers")  # another channel's token does not open this one
    assert engine.post(CDA, "aig_x")[0] == 401
    assert engine.senders("docs") == []


def test_a_token_added_works_at_once_names_the_sender_and_stops_once_revoked(
    engine: AuthEngine,
) -> None:
    token = engine.add("lab")  # after the engine started: found on the cache miss
    status, _, body = engine.post(CDA, token)
    assert (status, body["code"]) == (422, "invalid_document")
    engine.revoke("lab")
    for _ in range(50):
        if engine.post(CDA, token)[0] == 401:
            break
        time.sleep(0.1)
    assert engine.post(CDA, token)[0] == 401
    assert engine.senders("docs")[0] == ("token:lab", "dead_lettered")


def test_only_allowed_client_certificates_may_send_and_name_the_sender(
    engine: AuthEngine, ca: trustme.CA
) -> None:
    def client(name: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        if name is not None:
            ca.issue_cert(name).configure_cert(context)
        return context

    status, _, body = engine.post(CDA, port_name="mtls_port", context=client("lab-a.example"))
    assert (status, body["code"]) == (422, "invalid_document")
    for refused in ("lab-b.example", None):  # not an allowed subject; no certificate at all
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
            engine.post(CDA, port_name="mtls_port", context=client(refused))
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        engine.post(CDA, port_name="mtls_port")  # plain HTTP on the TLS port
    assert engine.senders("docs_mtls") == [("cert:lab-a.example", "dead_lettered")]


def test_a_peer_outside_allowed_peers_is_closed_before_anything_is_read(
    engine: AuthEngine,
) -> None:
    address = ("127.0.0.1", engine.ports["peers_port"])
    with (
        socket.create_connection(address, timeout=5) as sock,
        contextlib.suppress(ConnectionResetError, BrokenPipeError),  # closed: either way
    ):
        sock.sendall(b"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n<a>")
        assert sock.recv(100) == b""
    status, _, _ = engine.post(CDA, port_name="peers_port", source="127.0.0.2")
    assert status == 422
    assert engine.senders("docs_peers") == [("docs_peers", "dead_lettered")]


def test_a_forged_replacement_of_another_senders_document_gets_403(
    engine: AuthEngine,
) -> None:
    engine.send("MSH|^~\\&|GAM|H|AIG|H|20240101||ADT^A28^ADT_A05|A1|P|2.5\r" + pid("IPP1", INS))
    lab, forger = engine.add("lab"), engine.add("forger")
    status, _, body = engine.post(TSH.read_bytes(), lab)
    assert (status, body["status"]) == (200, "delivered")
    status, _, body = engine.post(replacement(TSH.read_bytes()), forger)
    assert (status, body["code"]) == (403, "not_document_owner")
    assert engine.rows("SELECT document_id, status FROM store_documents") == [(TSH_ID, "current")]
