"""The keyring that encrypts document bytes at rest: key file and environment formats, the
demo's key made 0600 in a 0700 folder, sealing bound to its row, and the production warning."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from engine.channels.loader import load_channels, parse_channels
from engine.channels.production import production_warnings
from engine.errors import RecordKeyError, RecordKeyMissing, RecordTampered
from engine.security.key_settings import KEY_ENV, EncryptionSettings
from engine.security.keys import (
    Keyring,
    key_id,
    keyring,
    new_key,
    parse_env,
    read_key_file,
    write_key_file,
)
from engine.store import crypto

REPO = Path(__file__).resolve().parents[2]
PLAIN = b"<ClinicalDocument>PAT-TROIS DOMINIQUE</ClinicalDocument>"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_demo_key_is_made_on_first_start_0600_in_a_0700_folder_and_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "keys" / "record.key"
    first = keyring(EncryptionSettings(key_file=path, create_key=True))
    assert first is not None and path.exists()
    assert (_mode(path), _mode(path.parent)) == (0o600, 0o700)
    again = keyring(EncryptionSettings(key_file=path, create_key=True))
    assert again is not None and again.newest == first.newest  # not made twice
    assert [k.id for k in read_key_file(path)] == [first.newest.id]


def test_the_repository_demo_keeps_its_key_under_the_ignored_var_folder() -> None:
    config = load_channels(REPO / "channels.yaml")
    settings = config.engine.encryption
    assert settings is not None and settings.create_key
    assert settings.key_file.is_relative_to(REPO / "var")
    assert "var/" in (REPO / ".gitignore").read_text().splitlines()


def test_a_missing_key_file_without_create_key_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "record.key"
    with pytest.raises(RecordKeyMissing, match="does not exist"):
        keyring(EncryptionSettings(key_file=path))
    assert not path.exists()


def test_no_keyring_without_settings_and_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert keyring(None) is None
    old, new = new_key(), new_key()
    env = ",".join(base64.b64encode(k.secret).decode() for k in (old, new))
    monkeypatch.setenv(KEY_ENV, env)
    ring = keyring(EncryptionSettings(key_file=tmp_path / "absent.key"))
    assert ring is not None and ring.path is None
    assert [k.id for k in ring.all_keys()] == [old.id, new.id] and ring.newest.id == new.id


@pytest.mark.parametrize(
    "line, problem",
    [
        ("kabc 2026-01-01T00:00:00+00:00", "expected"),
        (f"kabc 2026-01-01T00:00:00+00:00 {base64.b64encode(b'x' * 32).decode()}", "match"),
        (f"{key_id(b'x' * 16)} 2026-01-01 {base64.b64encode(b'x' * 16).decode()}", "32 bytes"),
        ("kabc 2026-01-01 not*base64", "base64"),
    ],
)
def test_a_malformed_key_file_is_refused_naming_the_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "record.key"
    path.write_text(f"# comment\n{line}\n")
    with pytest.raises(RecordKeyError, match=f"{re.escape(str(path))}:2.*{problem}"):
        read_key_file(path)


def test_a_key_id_is_derived_from_its_key_and_errors_never_show_key_material() -> None:
    with pytest.raises(RecordKeyError) as caught:
        parse_env("bm90IGEga2V5")  # "not a key", 9 bytes
    assert "bm90IGEga2V5" not in caught.value.reason
    key = new_key()
    assert key.id == key_id(key.secret) and key.id not in repr(key.secret)
    assert base64.b64encode(key.secret).decode() not in repr(key)


def test_sealed_bytes_open_only_under_their_key_and_row(tmp_path: Path) -> None:
    ring = Keyring([new_key()])
    aad = crypto.document_aad("1.2.3", 1)
    kid, blob = crypto.seal_with(ring, PLAIN, aad)
    assert kid == ring.newest.id and PLAIN not in blob and b"PAT-TROIS" not in blob
    assert crypto.unseal_with(ring, kid, blob, aad, "row 1") == PLAIN
    _, again = crypto.seal_with(ring, PLAIN, aad)
    assert again != blob  # a fresh nonce each time
    for other, changed in (
        (crypto.document_aad("1.2.3", 2), blob),  # another version's row
        (crypto.document_aad("1.2.4", 1), blob),
        (aad, blob[:-1] + bytes([blob[-1] ^ 1])),  # one bit changed
        (aad, blob[:5]),  # cut short
    ):
        with pytest.raises(RecordTampered) as caught:
            crypto.unseal_with(ring, kid, changed, other, "store_documents row 7")
        assert "row 7" in caught.value.reason and "PAT-TROIS" not in caught.value.reason
    with pytest.raises(RecordKeyMissing, match="no key kmissing"):
        crypto.unseal_with(ring, "kmissing", blob, aad, "row 1")


def test_the_engine_writes_in_clear_without_a_keyring_and_reads_both(tmp_path: Path) -> None:
    db = create_engine("sqlite://")
    try:
        with db.connect() as conn:
            assert crypto.seal(conn, PLAIN, b"a") == (None, PLAIN)
            assert crypto.unseal(conn, None, PLAIN, b"a", "row 1") == PLAIN
            with pytest.raises(RecordKeyMissing, match="no keyring"):
                crypto.unseal(conn, "k1", b"x" * 40, b"a", "row 1")
        ring = Keyring([new_key()])
        crypto.attach(db, ring)
        with db.connect() as conn:
            kid, blob = crypto.seal(conn, PLAIN, b"a")
            assert kid == ring.newest.id
            assert crypto.unseal(conn, kid, blob, b"a", "row 1") == PLAIN
            assert crypto.unseal(conn, None, PLAIN, b"a", "row 2") == PLAIN  # from before
    finally:
        db.dispose()


def test_a_keyring_read_from_a_file_takes_a_key_added_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "record.key"
    first = new_key()
    write_key_file(path, [first])
    ring = Keyring(read_key_file(path), path)
    second = new_key()
    write_key_file(path, [first, second])  # what `keys rotate` does beside a running engine
    kid, blob = crypto.seal_with(Keyring([second]), PLAIN, b"a")
    assert crypto.unseal_with(ring, kid, blob, b"a", "row 1") == PLAIN
    assert ring.newest.id == second.id
    assert _mode(path) == 0o600
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".new")]


def test_production_without_encryption_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = "engine:\n  profile: production\n{extra}channels:\n"
    channel = (
        "  - name: adt\n    source: {type: mllp, port: 2575}\n    accept: ['ADT^*']\n"
        "    destinations: {store: {type: record_store}}\n"
    )
    bare = parse_channels(head.format(extra="") + channel)
    [warning] = production_warnings(bare)
    assert "engine.encryption" in warning and KEY_ENV in warning
    extra = f"  encryption: {{key_file: {tmp_path / 'k'}}}\n"
    assert production_warnings(parse_channels(head.format(extra=extra) + channel)) == []
    monkeypatch.setenv(KEY_ENV, base64.b64encode(new_key().secret).decode())
    assert production_warnings(bare) == []
    demo = parse_channels(head.replace("production", "demo").format(extra="") + channel)
    assert production_warnings(demo) == []


def test_keys_init_makes_the_production_key_file_once(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine.cli.main import app

    config = tmp_path / "channels.yaml"
    config.write_text(
        "engine:\n  encryption: {key_file: keys/record.key}\nchannels:\n"
        "  - name: adt\n    source: {type: mllp, port: 2575}\n    accept: ['ADT^*']\n"
        "    destinations: {store: {type: record_store}}\n"
    )
    made = CliRunner().invoke(app, ["keys", "init", "--config", str(config)])
    assert made.exit_code == 0, made.output
    path = tmp_path / "keys" / "record.key"  # beside the channels file, not the working folder
    [key] = read_key_file(path)
    assert key.id in made.stdout and (_mode(path), _mode(path.parent)) == (0o600, 0o700)
    again = CliRunner().invoke(app, ["keys", "init", "--config", str(config)])
    assert again.exit_code == 1 and read_key_file(path) == [key]
