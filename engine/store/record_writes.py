"""Writing a filed operation into the record store: the encounter, the results, the documents,
and what an ADT said of the record's consent. The record store destination calls this with
what the transform stage mapped and the identify stage filed (the patient): nothing here reads
the message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from engine.store import batch, consent
from engine.store.cda_filing import store_document
from engine.store.observations import add_observations
from engine.store.ownership import Filer
from engine.store.record_core import encounters
from engine.transforms.map_adt import EncounterRecord
from engine.transforms.map_hl7 import StoreOperation


def write_filed(
    conn: Connection,
    message_id: int,
    op: StoreOperation,
    patient_id: int,
    now: datetime,
    filer: Filer,
) -> None:
    """Write ``op`` for patient ``patient_id`` in the caller's transaction; documents are
    filed under ``filer``, and an ADT's consent is recorded as given through it.

    Results (the hot path) go to the open batch's one insert; anything else is flushed at
    once, with the batch's patient lookups forgotten (:mod:`engine.store.batch`)."""
    for document, entries in zip(op.read, op.entries, strict=True):
        store_document(conn, patient_id, message_id, document, entries, now, filer)
    if op.encounter is not None:
        upsert_encounter(conn, patient_id, message_id, op.encounter, now)
    add_observations(conn, op.observations, patient_id, message_id, now)
    if op.kind != "add_results":
        batch.settle(conn)
    if op.consent is not None:  # consent, closure, death (the DMP's rules)
        consent.apply_consent(conn, patient_id, op.consent, filer.identity, now)
        batch.settle(conn)


def upsert_encounter(
    conn: Connection, patient_id: int, message_id: int, enc: EncounterRecord, now: datetime
) -> None:
    e = encounters.c
    existing = conn.execute(
        select(e.id).where(
            e.patient_id == patient_id,
            e.visit_number == enc.visit_number,
            e.visit_authority == enc.visit_authority,
        )
    ).scalar()
    status = enc.status
    if status is None and enc.discharged_at is not None:
        status = "closed"
    values: dict[str, Any] = {
        k: v
        for k, v in (
            ("patient_class", enc.patient_class),
            ("location", enc.location),
            ("attending", enc.attending),
            ("admitted_at", enc.admitted_at),
            ("discharged_at", enc.discharged_at),
        )
        if v
    }
    if existing is None:
        conn.execute(
            encounters.insert().values(
                **values,
                patient_id=patient_id,
                visit_number=enc.visit_number,
                visit_authority=enc.visit_authority,
                status=status or "open",
                created_at=now,
                updated_at=now,
                last_message_id=message_id,
            )
        )
        return
    if status is not None:
        values["status"] = status
    if enc.status == "open":  # a cancelled discharge (A13)
        values["discharged_at"] = None
    conn.execute(
        encounters.update()
        .where(e.id == existing)
        .values(**values, updated_at=now, last_message_id=message_id)
    )
