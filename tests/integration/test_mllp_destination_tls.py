"""TLS on the MLLP destination, against a real TLS MLLP server with certificates made at test
time (trustme): the peer is verified against the configured CA and name, a client certificate
is presented when configured, and a TLS failure is a transient error that names it without
patient data (and sends none)."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hl7.mllp
import pytest
import trustme
from hl7.mllp import start_hl7_server

from engine.adapters import mllp_client
from engine.adapters.mllp_client import MllpDestination
from engine.channels.destinations import MllpDestinationConfig
from engine.errors import DestinationUnavailable
from engine.pipeline.delivery import BuildContext
from engine.security.tls import ServerTls, certificate_identity
from tests.integration.identity_harness import adt, pid
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine
from tests.integration.test_business_ack import LabServer, delivery

LAB_NAME = "lab.example.test"
PATIENT = pid("IPP1", "279035121518989", name="SECRETNAME")


@dataclass
class Pki:
    """A CA, the lab's server certificate (``LAB_NAME`` and 127.0.0.1) and the engine's client
    certificate, as PEM files."""

    folder: Path
    ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.ca_file = self.folder / "ca.pem"
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.server_cert, self.server_key = self._issue("server", LAB_NAME, "127.0.0.1")
        self.client_cert, self.client_key = self._issue("client", "aiguillage.example.test")

    def _issue(self, name: str, *identities: str) -> tuple[Path, Path]:
        cert = self.ca.issue_cert(*identities)
        cert_file, key_file = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        for i, pem in enumerate(cert.cert_chain_pems):
            pem.write_to_path(cert_file, append=i > 0)
        cert.private_key_pem.write_to_path(key_file)
        return cert_file, key_file


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@dataclass
class TlsLabServer(LabServer):
    """The lab's MLLP server behind TLS; keeps the client certificates it was shown."""

    tls: ssl.SSLContext | None = None
    clients: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = start_hl7_server(
            self.handle, "127.0.0.1", self.port, encoding="utf-8", ssl=self.tls
        )
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(10)

    async def handle(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter):  # type: ignore[no-untyped-def]
        self.clients.append(certificate_identity(writer.get_extra_info("peercert")))
        await super().handle(reader, writer)


def serve(pki: Pki, client_certs: bool = False) -> TlsLabServer:
    tls = ServerTls(
        cert_file=pki.server_cert,
        key_file=pki.server_key,
        client_ca_file=pki.ca_file if client_certs else None,
    )
    return TlsLabServer(tls=tls.context())


def destination(port: int, **tls: Any) -> MllpDestination:
    config = MllpDestinationConfig.model_validate(
        {"type": "mllp", "host": "127.0.0.1", "port": port, "timeout_seconds": 2, "tls": tls}
    )
    return mllp_client.build(config, "lab", BuildContext())


MESSAGE = adt("A28", PATIENT, "TLS1")


def test_a_message_is_delivered_to_a_peer_verified_against_the_configured_ca(pki: Pki) -> None:
    lab = serve(pki)
    try:
        destination(lab.port, ca_file=pki.ca_file, server_hostname=LAB_NAME).write(
            delivery(MESSAGE)
        )
        destination(lab.port, ca_file=pki.ca_file).write(delivery(MESSAGE))  # 127.0.0.1's SAN
    finally:
        lab.stop()
    assert [m.split("\r")[0] for m in lab.received] == [MESSAGE.split("\r")[0]] * 2
    assert lab.clients == ["", ""]  # no client certificate configured, none shown


@pytest.mark.parametrize(
    ("other_ca", "hostname", "why"),
    [
        (True, LAB_NAME, "unable to get local issuer certificate"),
        (False, "another.example.test", "Hostname mismatch"),
    ],
)
def test_a_peer_that_fails_verification_is_a_transient_error_and_gets_no_message(
    pki: Pki, tmp_path: Path, other_ca: bool, hostname: str, why: str
) -> None:
    ca_file = pki.ca_file
    if other_ca:
        ca_file = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(ca_file)
    lab = serve(pki)
    try:
        with pytest.raises(DestinationUnavailable) as failed:
            destination(lab.port, ca_file=ca_file, server_hostname=hostname).write(
                delivery(MESSAGE)
            )
    finally:
        lab.stop()
    reason = failed.value.reason
    assert reason.startswith(f"MLLP peer 127.0.0.1:{lab.port}: TLS verification of its")
    assert why in reason and "SECRETNAME" not in reason
    assert failed.value.transient and lab.received == []


def test_a_peer_requiring_client_certificates_gets_the_configured_one(pki: Pki) -> None:
    lab = serve(pki, client_certs=True)
    try:
        with pytest.raises(DestinationUnavailable, match="client certificate") as refused:
            destination(lab.port, ca_file=pki.ca_file).write(delivery(MESSAGE))
        mtls = destination(
            lab.port, ca_file=pki.ca_file, cert_file=pki.client_cert, key_file=pki.client_key
        )
        mtls.write(delivery(MESSAGE))
    finally:
        lab.stop()
    assert "SECRETNAME" not in refused.value.reason
    assert len(lab.received) == 1
    assert lab.clients == ["cert:aiguillage.example.test"]


CHANNEL = """  - name: adt
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations:
      lab: {{type: mllp, host: 127.0.0.1, port: {lab_port}, timeout_seconds: 1,
             tls: {{ca_file: "{ca_file}"}}}}
"""


def test_the_engine_retries_a_message_whose_peer_fails_tls_verification(
    pki: Pki, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(other_ca)
    lab = serve(pki)
    engine = InProcessEngine(
        ENGINE_HEAD + CHANNEL,
        url=f"sqlite:///{tmp_path / 'e.db'}",
        lab_port=lab.port,
        ca_file=other_ca,
    )
    try:
        assert engine.send(MESSAGE, wait=False) == ["AA"]
        deadline = time.monotonic() + 10
        query = "SELECT state, error_code, error_reason FROM journal_messages"
        while not (rows := engine.rows(f"{query} WHERE state = 'retrying'")):
            assert time.monotonic() < deadline, "never retried"
            time.sleep(0.05)
    finally:
        engine.stop()
        lab.stop()
    [(state, code, reason)] = rows
    assert (state, code) == ("retrying", "destination_unavailable")
    assert "TLS verification" in str(reason) and "SECRETNAME" not in str(reason)
    assert lab.received == []
