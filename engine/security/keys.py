"""The keyring that encrypts document bytes at rest (AES-256-GCM): keys from a file or from
``AIGUILLAGE_RECORD_KEY``. The newest key seals, every key opens.

The key file has one key a line, ``<key id> <created, ISO 8601 UTC> <key, base64>``, oldest
first; ``#`` starts a comment. A key id is derived from its key (so a key given in the
environment has the same id as in a file, and a line whose id does not match is refused).
A keyring read from a file follows it: ``aiguillage keys rotate`` adds a key to the file
while the engine runs, and the engine takes it within a second (seals under it, opens
what was sealed under it). Nothing here logs or raises with key material.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import RecordKeyError, RecordKeyMissing
from engine.security.key_settings import KEY_ENV, EncryptionSettings

KEY_BYTES = 32  # AES-256
#: How often (seconds) a keyring read from a file looks whether the file changed.
RECHECK_SECONDS = 1.0
_HEADER = (
    "# Aiguillage record keys: <id> <created> <key, base64>, oldest first. The last key\n"
    "# encrypts, every key decrypts. Keep this file private (0600) and out of repositories.\n"
)


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    secret: bytes = field(repr=False)
    created: datetime | None = None  # None: given in the environment


def key_id(secret: bytes) -> str:
    """The id stored with each row sealed under ``secret`` (a digest: it reveals nothing)."""
    return "k" + hashlib.sha256(b"aiguillage record key\0" + secret).hexdigest()[:15]


def new_key(now: datetime | None = None) -> Key:
    secret = os.urandom(KEY_BYTES)
    return Key(key_id(secret), secret, (now or datetime.now(UTC)).replace(microsecond=0))


class Keyring:
    """Keys by id; ``newest`` seals. ``path``: re-read when the file changes."""

    def __init__(self, keys: Sequence[Key], path: Path | None = None) -> None:
        if not keys:
            raise RecordKeyError("the keyring holds no key")
        self.path = path
        self._keys = {k.id: k for k in keys}
        self._newest = keys[-1]
        self._mtime = _mtime(path) if path is not None else None
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    @property
    def newest(self) -> Key:
        self._follow()
        return self._newest

    def all_keys(self) -> list[Key]:
        self._follow()
        return list(self._keys.values())

    def get(self, ident: str) -> Key:
        key = self._keys.get(ident)
        if key is None:
            self._follow(force=True)  # a key added by `keys rotate` a moment ago
            key = self._keys.get(ident)
        if key is None:
            where = f" ({self.path})" if self.path is not None else f" ({KEY_ENV})"
            raise RecordKeyMissing(f"no key {ident} in the keyring{where}")
        return key

    def _follow(self, force: bool = False) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_SECONDS:
            return
        with self._lock:
            self._checked = now
            mtime = _mtime(self.path)
            if mtime is None or mtime == self._mtime:
                return  # gone meanwhile: keep the keys in hand (the next start says so)
            keys = read_key_file(self.path)
            self._keys, self._newest, self._mtime = {k.id: k for k in keys}, keys[-1], mtime


def _mtime(path: Path) -> tuple[int, int] | None:
    """The file's identity and modification time (a rewrite renames a new file over it)."""
    try:
        stat = path.stat()
        return stat.st_ino, stat.st_mtime_ns
    except OSError:
        return None


def keyring(settings: EncryptionSettings | None) -> Keyring | None:
    """The configured keyring: ``AIGUILLAGE_RECORD_KEY``, else ``engine.encryption.key_file``
    (made with a new key first when ``create_key`` and missing); None when neither is set.
    Raises RecordKeyError (a missing or malformed file)."""
    env = os.environ.get(KEY_ENV, "").strip()
    if env:
        return Keyring(parse_env(env))
    if settings is None:
        return None
    path = settings.key_file
    if not path.exists():
        if not settings.create_key:
            raise RecordKeyMissing(
                f"engine.encryption.key_file {path} does not exist: restore it, or make "
                "one for a new store with `aiguillage keys init`"
            )
        # FileExistsError: another process's first start made it a moment ago; use that one.
        with contextlib.suppress(FileExistsError):
            write_key_file(path, [new_key()], exclusive=True)
    return Keyring(read_key_file(path), path)


def parse_env(value: str) -> list[Key]:
    keys = []
    for n, item in enumerate(value.replace(",", " ").split(), start=1):
        secret = _decode(item, f"{KEY_ENV} key {n}")
        keys.append(Key(key_id(secret), secret))
    return keys


def read_key_file(path: Path) -> list[Key]:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordKeyError(f"cannot read the key file {path}: {type(exc).__name__}") from None
    keys = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{path}:{n}"
        if len(parts) != 3:
            raise RecordKeyError(f"{where}: expected '<id> <created> <key>'")
        secret = _decode(parts[2], where)
        if key_id(secret) != parts[0]:
            raise RecordKeyError(f"{where}: the key does not match its id {parts[0]}")
        try:
            created = datetime.fromisoformat(parts[1])
        except ValueError:
            raise RecordKeyError(f"{where}: the creation time is not ISO 8601") from None
        keys.append(Key(parts[0], secret, created))
    if not keys:
        raise RecordKeyError(f"the key file {path} holds no key")
    return keys


def _decode(text: str, where: str) -> bytes:
    try:
        secret = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RecordKeyError(f"{where}: the key is not base64") from None
    if len(secret) != KEY_BYTES:
        raise RecordKeyError(f"{where}: a key is {KEY_BYTES} bytes, not {len(secret)}")
    return secret


def write_key_file(path: Path, keys: Sequence[Key], exclusive: bool = False) -> None:
    """Write the keyring: the file 0600 (written aside, then renamed over the old one, so a
    reader sees the old keyring or the new one), its folder made 0700 if missing.
    ``exclusive``: fail if the file exists (two first starts at once keep one key)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lines = [_HEADER]
    for k in keys:
        created = (k.created or datetime.now(UTC)).isoformat()
        lines.append(f"{k.id} {created} {base64.b64encode(k.secret).decode('ascii')}\n")
    data = "".join(lines).encode("ascii")
    aside = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    _write_new(aside, data)
    if not exclusive:
        os.replace(aside, path)
        return
    try:
        os.link(aside, path)  # atomic, and fails when the file exists
    finally:
        aside.unlink()


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
