"""The shared record's read side end to end: an engine in this process fed over MLLP (ADT and
MDM carrying the CI-SIS sample CDAs), the record listener on the engine's loop on a free port,
tokens made by the real CLI, and requests over HTTP with httpx."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from engine.channels.record_api_settings import RecordApiSettings
from engine.cli.main import app
from engine.record_api.server import RecordListener
from engine.security.tls import ServerTls
from tests.e2e.engine_process import free_port
from tests.integration.identity_harness import IdentityEngine, adt, msh, pid
from tests.sample_files import CDA_SAMPLES

INS = "279035121518989"  # the ANS test patient of the CI-SIS samples
OTHER_INS = "185057512300143"
PATIENT = pid("IPP1", INS)
TSH = CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"  # biology, author 8 01234534765
TSH_ID = "1.2.250.1.213.1.1.1.55.2024.9.1"
VSM = CDA_SAMPLES / "VSM_1.4_2022.01.xml"  # summary, author 8 01234567897
VSM_ID = "1.2.250.1.213.1.1.1.13.2022.1.1"
IMG = CDA_SAMPLES / "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"  # imaging, author 8 01234560801
IMG_ID = "1.2.250.1.213.1.1.1.45.2024.2.1"
VAC = CDA_SAMPLES / "VAC_2023.01.xml"  # prevention
VAC_ID = "1.2.250.1.213.1.1.1.37.2023.1.1"

#: RPPS of the professionals the tests register.
HOSPITAL_DOCTOR = "10000000001"  # facility CHU-X: the patient's visit (care team)
BIOLOGIST = "01234534765"  # author of the TSH report
GP = "01234567897"  # author of the VSM
OUTSIDER = "10000000099"  # no visit, no document, no authorisation
FACILITIES = {
    HOSPITAL_DOCTOR: "CHU-X",
    BIOLOGIST: "Laboratoire des charmes",
    GP: "Centre de soins le Belvédère",
    OUTSIDER: "Clinique Ailleurs",
}


def mdm(cda: Path | bytes, control_id: str, **flags: bool) -> str:
    """An MDM^T02 carrying ``cda`` (base64 in OBX 1) with MetaDMPMSS masking flags."""
    data = base64.b64encode(cda if isinstance(cda, bytes) else cda.read_bytes()).decode()
    segments = [
        msh("MDM^T02^MDM_T02", control_id),
        "EVN||20240306111154",
        PATIENT,
        "TXA|1|11502-2|TEXT|20240306111154",
        f"OBX|1|ED|11502-2^CR^LN||^text^XML^Base64^{data}||||||F",
    ]
    names = ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REP_LEGAUX")
    for n, code in enumerate(names, start=2):
        value = "Y" if flags.get(code.lower()) else "N"
        segments.append(f"OBX|{n}|CWE|{code}^{code}^MetaDMPMSS||{value}||||||F")
    return "\r".join(segments)


class RecordWorld:
    """An engine with the record listener; ``tokens`` of the registered professionals."""

    def __init__(
        self,
        url: str,
        monkeypatch: pytest.MonkeyPatch,
        tls: ServerTls | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.url = url
        self.monkeypatch = monkeypatch
        self.engine = IdentityEngine(url, accept=("ADT^*", "ORU^R01", "MDM^*"))
        settings = RecordApiSettings(port=free_port(), tls=tls)
        self.listener = RecordListener(settings, self.engine.engine.db)
        self._run(self.listener.start())
        scheme = "https" if tls is not None else "http"
        self.base = f"{scheme}://127.0.0.1:{self.listener.port}"
        self.http = httpx.Client(base_url=self.base, timeout=10, verify=verify)
        self.tokens: dict[str, str] = {}

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.engine.loop).result(10)

    def stop(self) -> None:
        self.http.close()
        self._run(self.listener.stop())
        self.engine.stop()

    def cli(self, *args: str) -> str:
        """``aiguillage ARGS`` on this database; its stdout (fails the test on an error)."""
        self.monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", self.url)
        result = CliRunner().invoke(app, [*args, "--config", "absent.yaml"])
        assert result.exit_code == 0, result.output
        return result.stdout

    def professional(self, rpps: str) -> str:
        token = self.cli(
            "professionals",
            "add",
            rpps,
            "--name",
            f"Dr {rpps}",
            "--profession",
            "médecin",
            "--facility",
            FACILITIES[rpps],
        ).strip()
        self.tokens[rpps] = token
        return token

    def patient(self, ins: str = INS) -> str:
        return self.cli("patients", "enroll", ins).strip()

    def admitted_with_documents(self) -> str:
        """The test patient admitted at CHU-X, with a lab report, a VSM, an imaging report and
        a vaccination note filed; their enrolled token, the record opened by their consent."""
        assert (
            self.engine.send(
                adt("A01", PATIENT, "1"),
                mdm(TSH, "2"),
                mdm(VSM, "3"),
                mdm(IMG, "4"),
                mdm(VAC, "5"),
            )
            == ["AA"] * 5
        )
        token = self.patient()
        for rpps in FACILITIES:
            self.professional(rpps)
        consent = self.post(token, "consent")
        assert consent.status_code == 204, consent.text
        return token

    def get(self, token: str, path: str = "", **params: str) -> httpx.Response:
        return self.http.get(self.path(path), params=params, headers=auth(token))

    def post(self, token: str, path: str, json: Any = None) -> httpx.Response:
        return self.http.post(self.path(path), json=json, headers=auth(token))

    def delete(self, token: str, path: str) -> httpx.Response:
        return self.http.delete(self.path(path), headers=auth(token))

    @staticmethod
    def path(path: str, ins: str = INS) -> str:
        return f"/api/v1/records/{ins}" + (f"/{path}" if path else "")

    def as_(self, rpps: str) -> str:
        return self.tokens[rpps]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def document_ids(record: dict[str, Any]) -> set[str]:
    """Every document id the record's medical space and prevention show."""
    sections = record["sections"]
    ids = {d["id"] for docs in sections["medical"].values() for d in docs}
    ids |= {d["id"] for d in sections["prevention"]["documents"]}
    ids |= {d["id"] for d in sections["reimbursements"]["documents"]}
    return ids
