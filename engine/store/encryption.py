"""Encryption at rest, store side: the keyring given to a database engine at start, the
start-up check that every sealed row has its key in hand, the key ids in use, and the
re-encryption under the newest key (``aiguillage keys rotate``) in short transactions, so a
running engine is never held up for long.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, Table, bindparam, func, or_, select, update

from engine.channels.config import EngineSettings
from engine.errors import RecordKeyMissing
from engine.security.key_settings import KEY_ENV
from engine.security.keys import Keyring, keyring
from engine.store import crypto
from engine.store.documents import documents
from engine.store.record_tables import personal_documents

log = structlog.get_logger("engine.encryption")

#: The tables whose ``content`` is sealed, each with how its associated data is made.
SEALED: tuple[tuple[Table, Callable[[Any], bytes]], ...] = (
    (documents, lambda r: crypto.document_aad(r.document_id, r.version)),
    (personal_documents, lambda r: crypto.personal_aad(r.id)),
)


def use_keyring(db: Engine, settings: EngineSettings) -> Keyring | None:
    """Load the configured keyring (the demo's key file is made on first start) and attach
    it to ``db``; None when encryption is not configured (a production engine says so in
    its log). Raises RecordKeyError for a missing or malformed key file."""
    ring = keyring(settings.encryption)
    crypto.attach(db, ring)
    if ring is None and settings.profile == "production":
        log.warning(
            "record_not_encrypted",
            reason=f"documents are stored in clear: set engine.encryption or {KEY_ENV}",
        )
    return ring


def check_keys(db: Engine) -> None:
    """At start: raise RecordKeyMissing, naming the key ids and row counts (never contents),
    when some rows are sealed under a key ``db``'s keyring does not hold."""
    with db.connect() as conn:
        ring = crypto.keyring_of(conn)
        held = set() if ring is None else {k.id for k in ring.all_keys()}
        in_use = set()
        for table, _ in SEALED:  # from the key_id index alone
            t = table.c
            in_use |= set(conn.scalars(select(t.key_id).where(t.key_id.is_not(None)).distinct()))
        if not in_use - held:
            return
        missing = {k: n for k, n in key_use(conn).items() if k is not None and k not in held}
    rows = ", ".join(f"{n} row(s) under {k}" for k, n in sorted(missing.items()))
    where = "no keyring is configured" if ring is None else f"the keyring ({_source(ring)}) lacks"
    raise RecordKeyMissing(
        f"the record store holds documents encrypted under keys the engine cannot open: "
        f"{rows}; {where} {'them' if ring is None else 'these keys'}. Restore the key file "
        f"(or {KEY_ENV}) that holds them"
    )


def _source(ring: Keyring) -> str:
    return str(ring.path) if ring.path is not None else KEY_ENV


def key_use(conn: Connection) -> dict[str | None, int]:
    """Rows (documents and personal documents with content) per key id; None: plaintext."""
    use: dict[str | None, int] = {}
    for table, _ in SEALED:
        t = table.c
        query = select(t.key_id, func.count()).where(t.content.is_not(None)).group_by(t.key_id)
        for key, count in conn.execute(query):
            use[key] = use.get(key, 0) + int(count)
    return use


@dataclass(frozen=True, slots=True)
class Progress:
    table: str
    rows: int  # re-encrypted in this batch
    total: int  # so far, every table


#: Passes over the tables at most: a pass finds the rows engines wrote under an older key
#: during the one before; more would chase an engine that never took the new key.
PASSES = 3
#: Rest between two batches. On SQLite a writer waiting for the lock polls it at most every
#: 100 ms (its busy handler's longest sleep): without a rest the next batch takes the lock
#: again first and intake waits for the whole rotation (as bench/retention.py measured for
#: the retention purge, whose rest this is).
PAUSE_SECONDS = 0.12


def reencrypt(
    conn: Connection, ring: Keyring, batch: int = 20, pause: float = PAUSE_SECONDS
) -> Iterator[Progress]:
    """Seal every row not under ``ring``'s newest key again under it, ``batch`` rows per
    committed transaction (``conn`` must not be in a transaction). Pass after pass (at most
    PASSES) until a pass finds none: rows an engine wrote under the old key meanwhile are
    taken too. ``pause``: seconds of rest after each batch, for the engine's writes."""
    total = 0
    for _ in range(PASSES):
        before = total
        for table, aad in SEALED:
            for rows in _batches(conn, table, aad, ring, batch):
                total += rows
                yield Progress(table.name, rows, total)
                time.sleep(pause)
        if total == before:
            return


def _batches(
    conn: Connection, table: Table, aad: Callable[[Any], bytes], ring: Keyring, batch: int
) -> Iterator[int]:
    t, last = table.c, 0
    change = (
        update(table)
        .where(t.id == bindparam("row"), t.key_id.is_not_distinct_from(bindparam("old")))
        .values(content=bindparam("blob"), key_id=bindparam("key"))
    )
    columns = [t.id, t.key_id, t.content]
    if table is documents:
        columns += [t.document_id, t.version]
    while True:
        newest = ring.newest.id
        with conn.begin():
            rows = conn.execute(
                select(*columns)
                .where(t.id > last, t.content.is_not(None))
                .where(or_(t.key_id.is_(None), t.key_id != newest))
                .order_by(t.id)
                .limit(batch)
            ).all()
            if not rows:
                return
            params = []
            for r in rows:
                data, row = aad(r), f"{table.name} row {r.id}"
                plain = bytes(r.content) if r.key_id is None else _open(ring, r, data, row)
                key, blob = crypto.seal_with(ring, plain, data)
                params.append({"row": r.id, "old": r.key_id, "blob": blob, "key": key})
            conn.execute(change, params)
        last = rows[-1].id
        log.info("documents_reencrypted", table=table.name, rows=len(rows), key_id=newest)
        yield len(rows)


def _open(ring: Keyring, r: Any, data: bytes, row: str) -> bytes:
    return crypto.unseal_with(ring, r.key_id, r.content, data, row)
