"""``aiguillage keys``: the keys that encrypt document bytes at rest in the record store.

``rotate`` adds a key to the key file and re-encrypts, in short transactions, every row not
under it: the engine keeps running (it takes the new key from the file within a second).
``remove`` then drops a key no row uses. Key material is never printed, but by ``generate``.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Connection

from engine.cli.common import (
    ConfigOption,
    JsonOption,
    configured_engine,
    console,
    database,
    err_console,
    print_json,
)
from engine.cli.output import print_table, utc_json
from engine.security.key_settings import KEY_ENV
from engine.security.keys import Keyring, new_key, read_key_file, write_key_file
from engine.store import crypto
from engine.store.encryption import PAUSE_SECONDS, key_use, reencrypt

app = typer.Typer(
    no_args_is_help=True, help="keys that encrypt document bytes at rest in the record store"
)
CHANNELS = Path("channels.yaml")


@app.command("init")
def init(config: ConfigOption = CHANNELS) -> None:
    """Make the key file engine.encryption names, with its first key (0600, in a 0700
    folder); refused when it exists."""
    settings = configured_engine(config).encryption
    if settings is None:
        err_console.print(f"{config} has no engine.encryption.key_file", highlight=False)
        raise typer.Exit(2)
    key = new_key()
    try:
        write_key_file(settings.key_file, [key], exclusive=True)
    except FileExistsError:
        err_console.print(f"{settings.key_file} exists already", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"made {settings.key_file} with key {key.id}: back it up", highlight=False)


@app.command("list")
def list_(config: ConfigOption = CHANNELS, json: JsonOption = False) -> None:
    """Key ids, when each was made and how many rows each seals (never the keys); rows in
    clear and rows under a key the keyring lacks too."""
    with database(config) as conn:
        ring = crypto.keyring_of(conn)
        use = key_use(conn)
    rows: list[dict[str, object]] = []
    if ring is not None:
        newest = ring.newest.id
        for k in ring.all_keys():
            state = "encrypts" if k.id == newest else "decrypts"
            rows.append({"key_id": k.id, "created": k.created, "state": state})
    for row in rows:
        row["rows"] = use.pop(str(row["key_id"]), 0)
    for key, count in sorted(use.items(), key=lambda kv: kv[0] or ""):
        state = "plaintext" if key is None else "missing"
        rows.append({"key_id": key, "created": None, "state": state, "rows": count})
    if json:
        print_json(utc_json(rows))
        return
    if ring is None:
        err_console.print(f"encryption is not configured (engine.encryption or {KEY_ENV})")
    table = Table("key id", "created", "state", "rows")
    for r in rows:
        created = r["created"]
        when = f"{created:%Y-%m-%d %H:%M}" if created is not None else ""
        table.add_row(str(r["key_id"] or "-"), when, str(r["state"]), str(r["rows"]))
    print_table(table)


@app.command("rotate")
def rotate(
    config: ConfigOption = CHANNELS,
    batch: Annotated[
        int, typer.Option(min=1, help="rows per transaction (20 CDAs: ~0.1 s of the lock)")
    ] = 20,
    add: Annotated[
        bool,
        typer.Option(
            "--new-key/--no-new-key",
            help=f"add a key to the key file first (keys from {KEY_ENV}: put the new one last "
            "there, restart the engines, then rotate with --no-new-key)",
        ),
    ] = True,
    settle: Annotated[
        float,
        typer.Option(min=0, help="seconds for running engines to take the new key first"),
    ] = 2.0,
    pause: Annotated[
        float,
        typer.Option(min=0, help="seconds of rest after each batch, for the engine's writes"),
    ] = PAUSE_SECONDS,
) -> None:
    """Re-encrypt every document under the newest key (after adding one), a batch of rows
    per short transaction, while the engine runs; rows in clear are encrypted too."""
    with database(config) as conn:
        ring = _ring(conn)
        if add:
            if ring.path is None:
                err_console.print(
                    f"the keys come from {KEY_ENV}: put a new key (aiguillage keys generate) "
                    "last in it, restart the engines, then run keys rotate --no-new-key"
                )
                raise typer.Exit(2)
            key = new_key()
            write_key_file(ring.path, [*read_key_file(ring.path), key])
            err_console.print(f"added key {key.id} to {ring.path}", highlight=False)
            time.sleep(settle)  # engines look at their key file every second
            ring = Keyring(read_key_file(ring.path), ring.path)
        total = 0
        for progress in reencrypt(conn, ring, batch, pause):
            total = progress.total
        newest = ring.newest.id
        left = sum(n for k, n in key_use(conn).items() if k != newest)
    console.print(f"{total} row(s) re-encrypted under key {newest}", highlight=False)
    if left:  # an engine still seals under an older key (keys from the environment, say)
        err_console.print(
            f"{left} row(s) are still under older keys: does every engine use key {newest}? "
            "Run keys rotate --no-new-key again once they do"
        )
        raise typer.Exit(1)


@app.command("remove")
def remove(
    key_id: Annotated[str, typer.Argument(help="a key id (keys list)")],
    config: ConfigOption = CHANNELS,
) -> None:
    """Drop a key from the key file: refused for the newest key and for a key some rows are
    still sealed under (rotate first)."""
    with database(config) as conn:
        ring = _ring(conn)
        if ring.path is None:
            err_console.print(f"the keys come from {KEY_ENV}: remove it there")
            raise typer.Exit(2)
        keys = read_key_file(ring.path)
        if key_id not in {k.id for k in keys}:
            err_console.print(f"no key {key_id} in {ring.path}", highlight=False)
            raise typer.Exit(1)
        if key_id == keys[-1].id:
            err_console.print(f"{key_id} is the newest key: it encrypts new documents")
            raise typer.Exit(1)
        still = key_use(conn).get(key_id, 0)
        if still:
            err_console.print(f"{still} row(s) are still under {key_id}: run keys rotate first")
            raise typer.Exit(1)
        write_key_file(ring.path, [k for k in keys if k.id != key_id])
    console.print(f"removed key {key_id} from {ring.path}", highlight=False)


@app.command("generate")
def generate() -> None:
    """Print a new key (base64) for AIGUILLAGE_RECORD_KEY, and its id on stderr."""
    key = new_key()
    err_console.print(f"key id {key.id}")
    typer.echo(base64.b64encode(key.secret).decode("ascii"))


def _ring(conn: Connection) -> Keyring:
    ring = crypto.keyring_of(conn)
    if ring is None:
        err_console.print(f"encryption is not configured (engine.encryption or {KEY_ENV})")
        raise typer.Exit(2)
    return ring
