"""Generated HL7 v2 messages for end-to-end tests (varied patients, unique control ids)."""

from __future__ import annotations

PATIENTS = 50


def _pid(p: int) -> str:
    return f"PID|1||IPP{p:05d}^^^CHU-TEST^PI||NOM{p}^PRENOM{p}^^^^^L||1980{(p % 12) + 1:02d}15|F"


def a28(p: int) -> bytes:
    """ADT^A28 registering patient ``p`` (control id ``REG{p}``): results wait for it."""
    return "\r".join(
        [
            "MSH|^~\\&|GAM|CHU-TEST|AIGUILLAGE|CHU-TEST|20240306110000||ADT^A28^ADT_A05|"
            f"REG{p}|P|2.5||||||UNICODE UTF-8",
            "EVN||20240306110000",
            _pid(p),
        ]
    ).encode()


def oru(n: int, patients: int = PATIENTS, results: int = 2) -> bytes:
    """ORU^R01 number ``n``: patient ``n % patients``, ``results`` OBX, control id ``CTL{n}``."""
    p = n % patients
    segments = [
        f"MSH|^~\\&|LAB|CHU-TEST|AIGUILLAGE|CHU-TEST|20240306111154||ORU^R01^ORU_R01|CTL{n}|P|2.5"
        "||||||UNICODE UTF-8",
        _pid(p),
        f"OBR|1|ORD{n}|FIL{n}|24317-0^Hemogram^LN|||20240306100000",
    ]
    for k in range(1, results + 1):
        segments.append(
            f"OBX|{k}|NM|718-7^Hemoglobin^LN|{k}|{12 + k}.{n % 10}|g/dL|12-16|N|||F"
            "|||20240306100000"
        )
    return "\r".join(segments).encode()
