"""Reads of a table named at run time, for the channel tests written as data
(:mod:`engine.channeltest`): how many rows a table holds, and its rows with given column values.

A case file checks record-store tables (``store_observations``...) and, in the same words, the
journal's (``journal_holds``...), so any table of the shared metadata (``engine.db.metadata``:
every table whose module was imported) is accepted: one reader for both rather than two copies
of it. The engine's own paths never read a table by name: they go through the table's owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table, and_, func, select

from engine.db import metadata


def table(name: str) -> Table:
    """The table called ``name``; ``ValueError`` when there is none (a typo in a case file
    must fail the case, not count zero rows)."""
    if name not in metadata.tables:
        raise ValueError(f"unknown table {name!r}")
    return metadata.tables[name]


def count(conn: Connection, name: str) -> int:
    """How many rows the table called ``name`` holds."""
    return int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())


def rows_where(conn: Connection, name: str, where: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of the table called ``name`` whose columns equal ``where``'s values (``None``
    matches NULL), every row when ``where`` is empty; each row by column name. A column the
    table lacks raises ``KeyError``."""
    tbl = table(name)
    query = select(tbl)
    if where:
        query = query.where(and_(*(tbl.c[k] == v for k, v in where.items())))
    return [dict(r._mapping) for r in conn.execute(query)]
