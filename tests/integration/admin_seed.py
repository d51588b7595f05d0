"""Journal rows (and a stored patient) for the admin tests."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

from engine.journal.journal import Journal
from engine.journal.message_tables import State, messages
from engine.journal.records import NewMessage
from engine.store.record_core import patient_identifiers, patients

INS = "279035121518989"
ORU = (
    "MSH|^~\\&|LABO|LAB-A|DPI|CHU-X|20240306111154||ORU^R01^ORU_R01|{cid}|P|2.5\r"
    "PID|1||000003^^^CHU-X^PI||PAT-TROIS^DOMINIQUE||19790328|F\r"
    "OBX|1|NM|1554-5^Glucose^LN||182|mg/dl|70-105|H|||F"
)


def message(
    db: Engine,
    cid: str,
    *,
    channel: str = "lab",
    state: State = State.DELIVERED,
    kind: tuple[str, str] = ("ORU", "R01"),
    patient_key: str | None = "000003^CHU-X",
    sender: str = "token:lab-a",
    error_code: str | None = None,
    received_at: datetime | None = None,
) -> int:
    row = NewMessage(
        channel=channel,
        raw=ORU.format(cid=cid).encode(),
        peer="127.0.0.1:5000",
        sender=sender,
        charset="utf-8",
        sender_app="LABO",
        sender_facility="LAB-A",
        control_id=cid,
        message_type=kind[0],
        trigger=kind[1],
        patient_key=patient_key,
    )
    with db.connect() as conn:
        [appended] = Journal(db).append(conn, [row])
    values: dict[str, object] = {"state": state}
    if error_code:
        values.update(error_stage="route", error_code=error_code, error_reason="refused")
    if received_at is not None:
        values["received_at"] = received_at
    with db.begin() as conn:
        conn.execute(update(messages).where(messages.c.id == appended.id).values(**values))
    return appended.id


def patient(db: Engine, ins: str = INS, local: tuple[str, str] = ("000003", "CHU-X")) -> int:
    now = datetime.now(UTC)
    with db.begin() as conn:
        pid = conn.execute(
            insert(patients)
            .values(
                ins=ins,
                ins_oid="1.2.250.1.213.1.4.10",
                identity_status="VALI",
                birth_name="PAT-TROIS",
                first_given_name="DOMINIQUE",
                birth_date="19790328",
                sex="F",
                created_at=now,
                updated_at=now,
            )
            .returning(patients.c.id)
        ).scalar_one()
        conn.execute(
            insert(patient_identifiers).values(
                patient_id=pid, value=local[0], authority=local[1], type_code="PI"
            )
        )
    return int(pid)
