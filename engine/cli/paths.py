"""Where a command finds the engine's database; read-only commands never create one.

Run from the wrong folder, ``aiguillage stats`` used to make an empty ``var/aiguillage.db``
and report zeros: a command that only reads now says which database it looked for and exits 2.
A relative SQLite path is read from the channels file's folder
(:func:`engine.channels.loader.with_database_beside`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from sqlalchemy import Connection, make_url

from engine.cli.common import configured_url, database, err_console

#: The exit code of a command that cannot find what it should read.
NOT_FOUND = 2


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file ``url`` names when it does not exist (None: it exists, or the URL is
    not a SQLite file)."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return None
    if path.startswith("file:"):
        return None
    return None if Path(path).exists() else Path(path).absolute()


@contextmanager
def existing_database(config: Path) -> Iterator[Connection]:
    """:func:`engine.cli.common.database` for commands that only read: exit 2 with a clear
    message when the database does not exist, rather than making an empty one."""
    missing = missing_sqlite_file(configured_url(config))
    if missing is not None:
        hint = "" if config.exists() else f" (and no {config} here: give --config)"
        err_console.print(f"no journal database at {missing}{hint}", highlight=False, markup=False)
        raise typer.Exit(NOT_FOUND)
    with database(config) as conn:
        yield conn
