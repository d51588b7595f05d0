"""Bulk-loads a journal for bench/admin.py: ``n`` messages over ``channels`` channels and 30
days, with the state, type, sender and patient mix of a busy hospital engine, and a record
store whose patients hold INS and the journal's local ids."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from engine.identity.ins import nir_key
from engine.journal.message_tables import messages
from engine.store.record_core import patient_identifiers, patients

STATES = [("delivered", 90), ("filtered", 2), ("dead_lettered", 2), ("held", 3)]
STATES += [("review", 1), ("received", 1), ("retrying", 1)]
TYPES = [(("ORU", "R01"), 50), (("ADT", "A01"), 15), (("ADT", "A08"), 20), (("MDM", "T02"), 14)]
TYPES += [(("SIU", "S12"), 1)]
SPAN = timedelta(days=30)
PATIENTS = 200_000
SENDERS = 100
RAW = b"MSH|^~\\&|LABO|LAB-A|DPI|CHU-X|20240306111154||ORU^R01^ORU_R01|%d|P|2.5\rPID|1||%d\r"


def ins_of(n: int) -> str:
    body = f"1{n % 100:02d}01{75:02d}{n:06d}"[:13].ljust(13, "0")
    return body + f"{nir_key(body):02d}"


def _weighted(pairs: list[tuple[Any, int]], rng: random.Random, n: int) -> list[Any]:
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights, k=n)


def rows(n: int, channels: int, end: datetime, seed: int = 7) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(seed)
    start = end - SPAN
    step = SPAN / n
    batch = 10_000
    for first in range(0, n, batch):
        count = min(batch, n - first)
        states = _weighted(STATES, rng, count)
        types = _weighted(TYPES, rng, count)
        out = []
        for k in range(count):
            i = first + k
            at = start + step * i
            patient = rng.randrange(PATIENTS)
            raw = RAW % (i, patient)
            out.append(
                {
                    "channel": f"ch_{i % channels:02d}",
                    "received_at": at,
                    "updated_at": at,
                    "peer": "10.0.0.1:5000",
                    "sender": f"token:sender-{rng.randrange(SENDERS)}",
                    "sender_app": "LABO",
                    "sender_facility": "LAB-A",
                    "control_id": f"C{i:09d}",
                    "message_type": types[k][0],
                    "trigger": types[k][1],
                    "patient_key": f"{patient:06d}^CHU-X",
                    "state": states[k],
                    "attempts": 1,
                    "ack_code": "AA",
                    "charset": "utf-8",
                    "size": len(raw),
                    "content_hash": hashlib.sha256(raw).hexdigest(),
                    "raw": raw,
                    "delivered_to": "",
                    "error_code": "bench_error" if states[k] == "dead_lettered" else None,
                }
            )
        yield out


def load(db: Engine, n: int, channels: int, end: datetime) -> None:
    for batch in rows(n, channels, end):
        with db.begin() as conn:
            conn.execute(insert(messages), batch)


def load_patients(db: Engine, count: int) -> None:
    """Patients 0..count-1: INS ``ins_of(i)`` and local id ``i^CHU-X`` (as in the journal)."""
    now = datetime.now(UTC)
    for first in range(0, count, 10_000):
        ids = range(first, min(count, first + 10_000))
        with db.begin() as conn:
            conn.execute(
                insert(patients),
                [
                    {
                        "id": i + 1,
                        "ins": ins_of(i),
                        "ins_oid": "1.2.250.1.213.1.4.10",
                        "identity_status": "VALI",
                        "birth_name": f"NAME{i}",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(patient_identifiers),
                [
                    {
                        "patient_id": i + 1,
                        "value": f"{i:06d}",
                        "authority": "CHU-X",
                        "type_code": "PI",
                    }
                    for i in ids
                ],
            )
