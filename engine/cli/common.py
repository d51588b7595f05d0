"""Shared CLI plumbing: options, database access, output."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from engine.channels.config import EngineSettings
from engine.channels.loader import ConfigError, load_channels
from engine.database_state import DatabaseState
from engine.db import database_url, is_outage, make_engine
from engine.distributed.notify import hand_to_workers
from engine.errors import RecordKeyError
from engine.migrate import upgrade
from engine.store.encryption import use_keyring

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="channels file (for the database URL)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def configured_engine(config: Path) -> EngineSettings:
    """The channels file's engine settings, or the defaults when there is no file."""
    if not config.exists():
        return EngineSettings()
    try:
        return load_channels(config).engine
    except ConfigError as exc:
        err_console.print(f"[red]{config} is invalid[/red]:\n{exc}")
        raise typer.Exit(2) from exc


def configured_url(config: Path) -> str:
    """The database URL: AIGUILLAGE_DATABASE_URL, else the channels file's, else the default."""
    return database_url(configured_engine(config).database_url)


def hand_over(config: Path, conn: Connection, ids: list[int]) -> None:
    """Tell the workers of a distributed deployment about messages put back in the pipeline."""
    handed = hand_to_workers(configured_engine(config).work, conn, ids)
    if handed:
        console.print(f"handed {handed} message(s) to the workers")


@contextmanager
def database(config: Path) -> Iterator[Connection]:
    """A connection to the migrated database. Unreachable (down, frozen: the connection's
    timeouts give up) it is one line on stderr, which database and why, and exit status 2."""
    url = configured_url(config)
    db = make_engine(url)
    try:
        _use_keyring(db, config)
        upgrade(db)
        with db.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        if not is_outage(exc):
            raise
        state = DatabaseState(url)
        err_console.print(
            f"database {state.where} unavailable: {state.reason(exc)} ({type(exc).__name__})",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2) from None
    finally:
        db.dispose()


def _use_keyring(db: Engine, config: Path) -> None:
    """The keyring that seals and opens document bytes (engine.encryption): a missing or bad
    key file is one line on stderr and exit status 2."""
    try:
        use_keyring(db, configured_engine(config))
    except RecordKeyError as exc:
        err_console.print(exc.reason, markup=False, highlight=False)
        raise typer.Exit(2) from None


def acting_operator(reason: str, operator: str | None = None) -> str:
    """Who acts (``--operator``, else the OS login) for an action that must say why: a blank
    ``--reason`` exits 2 before anything is done."""
    if not reason.strip():
        err_console.print("--reason must say why")
        raise typer.Exit(2)
    return operator or getpass.getuser()


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, default=_json_default, indent=2, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("latin-1")
    raise TypeError(type(value).__name__)
