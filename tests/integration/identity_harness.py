"""An engine in this process, fed over MLLP by python-hl7's client, for identity scenarios.

Messages are built here with chosen identities; the store is read back with SQL; the operator
commands run through the real CLI (``aiguillage identity ...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine.cli.main import app
from engine.identity.ins import nir_key
from tests.integration.inprocess import InProcessEngine

TEST_OID = "1.2.250.1.213.1.4.10"
NIA_OID = "1.2.250.1.213.1.4.9"
NIR_OID = "1.2.250.1.213.1.4.8"

CHANNELS = """
engine:
  database_url: {url}
  durability: normal
  identity: {{accept_test_ins: {accept}}}
channels:
  - name: hospital
    source: {{type: mllp, port: {port}}}
    accept: {types}
    destinations:
      store: {{type: record_store, require_ins: {require_ins}, documents: {documents}}}
"""


def nir(body: str) -> str:
    """A matricule with its key: 13 characters + 2 digits."""
    return f"{body}{nir_key(body):02d}"


def pid(
    ipp: str = "",
    ins: str = "",
    oid: str = TEST_OID,
    name: str = "PAT-TROIS",
    given: str = "DOMINIQUE",
    dob: str = "19790328",
    sex: str = "F",
    status: str = "VALI",
    more_ids: tuple[str, ...] = (),
) -> str:
    ids = [f"{ipp}^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"] if ipp else []
    if ins:
        ids.append(f"{ins}^^^ASIP-SANTE-INS-NIR&{oid}&ISO^INS")
    ids.extend(more_ids)
    fields = ["PID", "1", "", "~".join(ids), "", f"{name}^{given}^{given}^^^^L", "", dob, sex]
    fields += [""] * (33 - len(fields))
    fields[32] = status
    return "|".join(fields)


def msh(kind: str, control_id: str) -> str:
    head = "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154"
    return f"{head}||{kind}|{control_id}|P|2.5||||||UNICODE UTF-8"


def adt(trigger: str, pid_segment: str, control_id: str, mrg: str = "") -> str:
    segments = [msh(f"ADT^{trigger}", control_id), "EVN||20240306111154", pid_segment]
    if mrg:
        segments.append(f"MRG|{mrg}")
    if trigger == "A01":
        segments.append(f"PV1|1|I|||||||||||||||||V{control_id}^^^CHU-X^VN")
    return "\r".join(segments)


def oru(pid_segment: str, control_id: str, value: str = "4.2") -> str:
    return "\r".join(
        [
            msh("ORU^R01^ORU_R01", control_id),
            pid_segment,
            f"OBR|1|P{control_id}|F{control_id}|2823-3^Potassium^LN",
            f"OBX|1|NM|2823-3^Potassium^LN||{value}|mmol/L|3.5-5.0|N|||F|||20240306101500",
        ]
    )


class IdentityEngine(InProcessEngine):
    def __init__(
        self,
        url: str,
        accept_test_ins: bool = True,
        require_ins: bool = False,
        accept: tuple[str, ...] = ("ADT^*", "ORU^R01"),
        documents: str = "{}",
    ) -> None:
        self.url = url
        super().__init__(
            CHANNELS,
            url=url,
            types=json.dumps(list(accept)),
            documents=documents,
            accept=str(accept_test_ins).lower(),
            require_ins=str(require_ins).lower(),
        )

    def states(self) -> list[tuple[str, str]]:
        """(MSH-10, state) of every journaled message, in arrival order."""
        return [
            (str(r[0]), str(r[1]))
            for r in self.rows("SELECT control_id, state FROM journal_messages ORDER BY id")
        ]

    def patient(self, ipp: str) -> dict[str, object]:
        rows = self.rows(
            "SELECT p.id, p.ins, p.ins_oid, p.identity_status, p.birth_name, p.merged_into "
            "FROM store_patients p JOIN store_patient_identifiers i ON i.patient_id = p.id "
            "WHERE i.value = :ipp",
            ipp=ipp,
        )
        assert len(rows) == 1, rows
        keys = ("id", "ins", "ins_oid", "identity_status", "birth_name", "merged_into")
        return dict(zip(keys, rows[0], strict=True))

    def observations(self, patient_id: object) -> list[str]:
        return [
            str(r[0])
            for r in self.rows(
                "SELECT value FROM store_observations WHERE patient_id = :p ORDER BY id",
                p=patient_id,
            )
        ]

    def cli(self, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
        monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", self.url)
        return CliRunner().invoke(app, ["identity", *args, "--config", str(Path("absent.yaml"))])

    def attach(
        self, monkeypatch: pytest.MonkeyPatch, review_id: object, patient_id: object, why: str
    ) -> Result:
        """``aiguillage identity resolve ID --patient P --reason WHY``."""
        args = ["resolve", str(review_id), "--patient", str(patient_id), "--reason", why]
        return self.cli(monkeypatch, *args)
