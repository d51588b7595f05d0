"""Code tables: a sender's local codes and the codes a receiver wants (lab codes to LOINC).

A table is a CSV file with a ``from,to`` header and optional ``to_text`` and ``to_system``
columns (``from_text`` and ``comment`` are kept for the reader and ignored), or a YAML file: a
mapping ``{from: to}`` or a list of rows with the same keys. Tables are read and checked when
the configuration loads; a problem names the table's file and line. A table read once is kept
until its file changes (modification time and size), so that a reload picks up new rows.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Escaped = tuple[str, str, str]

COLUMNS = ("from", "to", "to_text", "to_system")
_IGNORED = ("from_text", "comment")


@dataclass(frozen=True, slots=True)
class Target:
    """What a code becomes: the code, and when the table gives them, its text and system."""

    code: str
    text: str | None = None
    system: str | None = None


@dataclass(frozen=True, slots=True)
class CodeTable:
    path: str
    entries: dict[str, Target]
    #: The table has a to_text / to_system column: a mapped coded element gets them too.
    has_text: bool
    has_system: bool

    #: Targets escaped for a message's delimiters, by delimiters: escaping once per table.
    _escaped: dict[str, dict[str, Escaped]] = field(default_factory=dict, compare=False)

    def get(self, code: str) -> Target | None:
        return self.entries.get(code)

    def escaped(
        self, delimiters: str, escape: Callable[[str], str]
    ) -> Callable[[str], Escaped | None]:
        """A lookup giving (code, text, system) ready to write with these delimiters."""
        done = self._escaped.get(delimiters)
        if done is None:
            done = self._escaped[delimiters] = {
                k: (escape(t.code), escape(t.text or ""), escape(t.system or ""))
                for k, t in self.entries.items()
            }
        return done.get


class TableError(ValueError):
    """A table that cannot be used; the message names the file and line."""


_cache: dict[str, tuple[tuple[int, int], CodeTable]] = {}


def load_table(path: str | Path) -> CodeTable:
    """The table at ``path`` (relative paths: from the working directory, like every other path
    in ``channels.yaml``)."""
    name = str(path)
    try:
        stat = os.stat(name)
    except OSError as exc:
        raise TableError(f"code table {name}: cannot read: {exc.strerror}") from exc
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(name)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        text = Path(name).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(f"code table {name}: cannot read: {exc}") from exc
    is_yaml = name.endswith((".yaml", ".yml"))
    table = _from_yaml(name, text) if is_yaml else _from_csv(name, text)
    _cache[name] = (stamp, table)
    return table


def _from_csv(name: str, text: str) -> CodeTable:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    _check_columns(name, 1, header)
    rows: list[tuple[int, dict[str, str]]] = []
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue  # blank lines
        if len(record) > len(header):
            raise TableError(f"{name}:{reader.line_num}: more cells than columns")
        rows.append((reader.line_num, dict(zip(header, (c.strip() for c in record), strict=False))))
    return _table(name, header, rows)


def _from_yaml(name: str, text: str) -> CodeTable:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TableError(f"{name}: YAML syntax: {exc}") from exc
    if isinstance(data, dict):
        rows = [(0, {"from": str(k), "to": str(v)}) for k, v in data.items()]
        return _table(name, ["from", "to"], rows)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise TableError(f"{name}: expected a mapping from: to, or a list of rows")
    columns = sorted({str(k) for r in data for k in r}, key=_column_order)
    _check_columns(name, 1, columns)
    return _table(
        name, columns, [(i, {str(k): str(v) for k, v in r.items()}) for i, r in enumerate(data, 1)]
    )


def _column_order(column: str) -> int:
    order = COLUMNS + _IGNORED
    return order.index(column) if column in order else len(order)


def _check_columns(name: str, line: int, header: list[str]) -> None:
    unknown = [h for h in header if h not in COLUMNS + _IGNORED]
    if unknown:
        raise TableError(
            f"{name}:{line}: unknown column {unknown[0]!r} (columns: from, to, to_text, "
            "to_system; from_text and comment are ignored)"
        )
    for required in ("from", "to"):
        if required not in header:
            raise TableError(f"{name}:{line}: a code table needs a {required!r} column")


def _table(name: str, header: list[str], rows: list[tuple[int, dict[str, str]]]) -> CodeTable:
    csv_file = not name.endswith((".yaml", ".yml"))

    def where(n: int) -> str:
        return f"{name}:{n}" if csv_file else f"{name} row {n}"

    entries: dict[str, Target] = {}
    for line, row in rows:
        code, to = row.get("from", ""), row.get("to", "")
        if not code or not to:
            raise TableError(f"{where(line)}: 'from' and 'to' must not be empty")
        if code in entries:
            raise TableError(f"{where(line)}: code {code!r} is already mapped")
        entries[code] = Target(to, row.get("to_text") or None, row.get("to_system") or None)
    return CodeTable(name, entries, "to_text" in header, "to_system" in header)
