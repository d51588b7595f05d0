"""Document bytes at rest: every write of a CDA or a personal document's content goes through
:func:`seal`, every read through :func:`unseal`.

AES-256-GCM with a random 96-bit nonce; the blob is ``nonce || ciphertext || tag`` and the row
keeps the id of the key beside it (``key_id``; NULL: plaintext, a row from before encryption,
or a store without a keyring). The associated data binds a blob to its row (a CDA to its
document id and version, a personal document to its row id): a blob copied over another row
fails authentication like a changed one.

The keyring travels with the database engine (:func:`attach`, an execution option every
connection inherits), so that the store's functions keep taking just a connection.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, select

from engine.errors import RecordKeyMissing, RecordTampered
from engine.security.keys import Keyring
from engine.store.documents import documents

OPTION = "aiguillage_keyring"
NONCE_BYTES = 12


def attach(db: Engine, ring: Keyring | None) -> None:
    """Seal what ``db``'s connections write under ``ring`` (None: write plaintext)."""
    db.update_execution_options(**{OPTION: ring})


def keyring_of(conn: Connection) -> Keyring | None:
    ring = conn.get_execution_options().get(OPTION)
    return ring if isinstance(ring, Keyring) else None


def document_aad(document_id: str, version: int) -> bytes:
    return b"store_documents\0" + document_id.encode("utf-8") + b"\0" + str(version).encode()


def personal_aad(row_id: int) -> bytes:
    return b"record_personal_documents\0" + str(row_id).encode()


def stored_document(conn: Connection, row_id: int) -> bytes:
    """The CDA of a ``store_documents`` row, opened."""
    d = documents.c
    query = select(d.id, d.document_id, d.version, d.key_id, d.content).where(d.id == row_id)
    return open_document(conn, conn.execute(query).one())


def open_document(conn: Connection, row: Any) -> bytes:
    """A ``store_documents`` row's plaintext: ``row`` has id, document_id, version, key_id and
    content."""
    aad = document_aad(row.document_id, row.version)
    return unseal(conn, row.key_id, row.content, aad, f"store_documents row {row.id}")


def open_personal(conn: Connection, row: Any) -> bytes:
    """A ``record_personal_documents`` row's content (id, key_id, content), opened."""
    aad = personal_aad(row.id)
    return unseal(conn, row.key_id, row.content, aad, f"record_personal_documents row {row.id}")


def seal(conn: Connection, plaintext: bytes, aad: bytes) -> tuple[str | None, bytes]:
    """(key id, blob) to store; (None, plaintext) when the engine has no keyring."""
    ring = keyring_of(conn)
    return (None, plaintext) if ring is None else seal_with(ring, plaintext, aad)


def seal_with(ring: Keyring, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
    key = ring.newest
    nonce = os.urandom(NONCE_BYTES)
    return key.id, nonce + _cipher(key.secret).encrypt(nonce, plaintext, aad)


def unseal(conn: Connection, key_id: str | None, blob: bytes, aad: bytes, row: str) -> bytes:
    """The plaintext of a stored blob. ``row`` names it in errors (table and row id, never
    contents): RecordKeyMissing when its key is not in hand, RecordTampered when it fails
    authentication."""
    if key_id is None:
        return bytes(blob)
    ring = keyring_of(conn)
    if ring is None:
        raise RecordKeyMissing(
            f"{row} is encrypted under key {key_id}, and the engine has no keyring "
            "(engine.encryption or AIGUILLAGE_RECORD_KEY)"
        )
    return unseal_with(ring, key_id, blob, aad, row)


def unseal_with(ring: Keyring, key_id: str, blob: bytes, aad: bytes, row: str) -> bytes:
    try:
        key = ring.get(key_id)
    except RecordKeyMissing as exc:
        raise RecordKeyMissing(f"{row}: {exc.reason}") from None
    data = bytes(blob)
    try:
        return _cipher(key.secret).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):  # ValueError: too short to hold a nonce
        raise RecordTampered(
            f"{row}: the stored bytes fail authentication under key {key_id} (changed in the "
            "database, or moved from another row)"
        ) from None


@lru_cache(maxsize=32)
def _cipher(secret: bytes) -> AESGCM:
    return AESGCM(secret)
