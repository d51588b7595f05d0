"""The MLLP source's trust boundary over real sockets, with certificates made at test time
(trustme): TLS, mTLS with allowed subjects, and allowed peer networks."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from engine.adapters.mllp import MllpServer
from engine.adapters.mllp_framing import END_BLOCK, START_BLOCK, frame
from tests.integration.inprocess import InProcessEngine

CHANNELS = """
engine:
  database_url: sqlite:///{db}
  durability: normal
channels:
  - name: secure
    source: {{type: mllp, port: {port}, {options}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
"""

ADT = (
    b"MSH|^~\\&|GAM|CHU|DPI|CHU|20240306111154||ADT^A04^ADT_A01|T1|P|2.5\r"
    b"EVN|A04|20240306111154\rPID|1||T1^^^CHU^PI||DARK^JEANNE||19800101|F\r"
)


class Pki:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = trustme.CA()
        self.ca_file = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(self.ca_file)
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert_file, self.key_file = folder / "server.pem", folder / "server.key"
        server.cert_chain_pems[0].write_to_path(self.cert_file)
        server.private_key_pem.write_to_path(self.key_file)

    def client(self, name: str, ca: trustme.CA | None = None) -> ssl.SSLContext:
        """A client context trusting our CA, with a certificate for ``name`` (CN) when given."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if name:
            cert = (ca or self.ca).issue_cert(name, common_name=name)
            cert.configure_cert(ctx)
        return ctx

    def source_tls(self, mutual: bool = False, subjects: tuple[str, ...] = ()) -> str:
        tls = f'cert_file: "{self.cert_file}", key_file: "{self.key_file}"'
        if mutual:
            tls += f', client_ca_file: "{self.ca_file}"'
        if subjects:
            tls += f", allowed_subjects: [{', '.join(subjects)}]"
        return f"tls: {{{tls}}}"


class SecureEngine(InProcessEngine):
    def __init__(self, tmp: Path, options: str) -> None:
        super().__init__(CHANNELS, db=tmp / "e.db", options=options)

    @property
    def server(self) -> MllpServer:
        server = self.engine.servers[0]
        assert isinstance(server, MllpServer)
        return server

    def exchange(self, ctx: ssl.SSLContext) -> bytes:
        """Send one message over TLS; the answer (b"" when the engine closed first)."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        with raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(frame(ADT))
            buf = b""
            while END_BLOCK not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf.strip(START_BLOCK + END_BLOCK + b"\r")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[str], SecureEngine]]:
    engines: list[SecureEngine] = []

    def make(options: str) -> SecureEngine:
        engines.append(SecureEngine(tmp_path, options))
        return engines[-1]

    yield make
    for eng in engines:
        eng.stop()


def refused(eng: SecureEngine, ctx: ssl.SSLContext) -> bool:
    """Whether the engine closed the connection without an answer (the TLS 1.3 client sees
    the server's alert only when it reads: as an error or as the end of the stream)."""
    try:
        return eng.exchange(ctx) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def counted(eng: SecureEngine, name: str) -> int:
    """A counter of the source, once the engine's side of a refusal has run."""
    for _ in range(100):
        if eng.server.counters[name]:
            break
        time.sleep(0.02)
    return eng.server.counters[name]


def journaled(eng: SecureEngine) -> list[tuple[object, ...]]:
    return eng.rows("SELECT control_id, sender FROM journal_messages")


def test_a_message_over_tls_is_acknowledged_and_attributed_to_its_declared_sender(
    pki: Pki, start: Callable[[str], SecureEngine]
) -> None:
    eng = start(pki.source_tls())
    ack = eng.exchange(pki.client(""))
    assert b"MSA|AA|T1" in ack
    assert journaled(eng) == [("T1", "secure:GAM^CHU")]


def test_plain_tcp_to_a_tls_listener_is_refused_and_nothing_is_journaled(
    pki: Pki, start: Callable[[str], SecureEngine]
) -> None:
    eng = start(pki.source_tls() + ", tls_handshake_timeout_seconds: 1")
    with socket.create_connection(("127.0.0.1", eng.port), timeout=5) as sock:
        sock.sendall(frame(ADT))
        assert sock.recv(100) == b""
    assert journaled(eng) == []
    assert counted(eng, "refused_tls_handshake_failed") == 1


def test_mtls_refuses_a_client_without_a_certificate(
    pki: Pki, start: Callable[[str], SecureEngine]
) -> None:
    eng = start(pki.source_tls(mutual=True))
    assert refused(eng, pki.client(""))
    assert journaled(eng) == []
    assert counted(eng, "refused_tls_handshake_failed") == 1


def test_mtls_refuses_a_certificate_from_another_ca(
    pki: Pki, start: Callable[[str], SecureEngine]
) -> None:
    eng = start(pki.source_tls(mutual=True))
    assert refused(eng, pki.client("lab.example", ca=trustme.CA()))
    assert journaled(eng) == []
    assert counted(eng, "refused_tls_handshake_failed") == 1


def test_mtls_closes_a_verified_certificate_whose_subject_is_not_allowed(
    pki: Pki, start: Callable[[str], SecureEngine]
) -> None:
    eng = start(pki.source_tls(mutual=True, subjects=("lab.example",)))
    assert refused(eng, pki.client("intruder.example"))
    assert journaled(eng) == []
    assert counted(eng, "refused_subject_not_allowed") == 1


def test_mtls_accepts_an_allowed_subject_and_journals_its_certificate_identity(
    pki: Pki, start: Callable[[str], SecureEngine]
) -> None:
    eng = start(pki.source_tls(mutual=True, subjects=("lab.example",)))
    ack = eng.exchange(pki.client("lab.example"))
    assert b"MSA|AA|T1" in ack
    assert journaled(eng) == [("T1", "cert:lab.example")]


def test_a_peer_outside_allowed_peers_is_closed_before_anything_is_journaled(
    start: Callable[[str], SecureEngine],
) -> None:
    eng = start('allowed_peers: ["10.0.0.0/8"]')
    with socket.create_connection(("127.0.0.1", eng.port), timeout=5) as sock:
        try:
            sock.sendall(frame(ADT))
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass  # closed before the bytes were read: refused either way
    assert journaled(eng) == []
    assert counted(eng, "refused_peer_not_allowed") == 1


def test_a_peer_inside_allowed_peers_is_served(start: Callable[[str], SecureEngine]) -> None:
    eng = start('allowed_peers: ["10.0.0.0/8", "127.0.0.1"]')
    with socket.create_connection(("127.0.0.1", eng.port), timeout=5) as sock:
        sock.sendall(frame(ADT))
        assert b"MSA|AA|T1" in sock.recv(4096)
