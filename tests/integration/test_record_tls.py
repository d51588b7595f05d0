"""Professionals identified by a client certificate whose subject carries their RPPS (as a CPS
card does), on the record listener with TLS; certificates made by trustme."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from engine.security.tls import ServerTls
from tests.integration.record_harness import BIOLOGIST, INS, OUTSIDER, TSH_ID, RecordWorld


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def world(
    store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ca: trustme.CA
) -> Iterator[RecordWorld]:
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
    server.private_key_pem.write_to_path(tmp_path / "server.key")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    tls = ServerTls(
        cert_file=tmp_path / "server.pem",
        key_file=tmp_path / "server.key",
        client_ca_file=tmp_path / "ca.pem",
    )
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    running = RecordWorld(store_url, monkeypatch, tls=tls, verify=trusting)
    yield running
    running.stop()


def client(ca: trustme.CA, common_name: str | None) -> httpx.Client:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if common_name is not None:
        ca.issue_cert("ps.example.fr", common_name=common_name).configure_cert(context)
    return httpx.Client(verify=context, timeout=10)


def test_a_professional_is_identified_by_the_rpps_in_their_certificate(
    world: RecordWorld, ca: trustme.CA
) -> None:
    """DESIGN.md §3.9 (professionals authenticate): in production by a client certificate whose
    subject carries the RPPS (``8`` + RPPS, as the CPS); the access log names that RPPS. A
    certificate naming an unregistered RPPS, or none, is 401; a patient's token still works."""
    patient = world.admitted_with_documents()
    url = f"{world.base}/api/v1/records/{INS}/documents/{TSH_ID}"
    with client(ca, f"8{BIOLOGIST}") as biologist:
        answer = biologist.get(url)
    assert (answer.status_code, answer.json()["id"]) == (200, TSH_ID)
    for name in ("899999999999", None):
        with client(ca, name) as other:
            assert other.get(url).status_code == 401
    with client(ca, None) as plain:
        own = plain.get(url, headers={"Authorization": f"Bearer {patient}"})
        assert own.status_code == 200
        log = plain.get(
            f"{world.base}/api/v1/records/{INS}/access-log",
            headers={"Authorization": f"Bearer {patient}"},
        ).json()
    assert any(e["actor"] == f"rpps:{BIOLOGIST}" and e["target"] == TSH_ID for e in log)
    with client(ca, f"8{OUTSIDER}") as outsider:
        assert outsider.get(url).json() == {"reason": "not_authorised"}
