"""What several benchmarks share: a PostgreSQL schema of their own, where reports go, and the
CPU a process used."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from engine.db import make_engine

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
POSTGRES_URL = os.environ.get(
    "AIGUILLAGE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class Unreachable(Exception):
    """The benchmark's PostgreSQL does not answer."""


@contextlib.contextmanager
def postgres_schema(prefix: str, url: str = POSTGRES_URL) -> Iterator[Engine]:
    """An engine on a fresh schema of ``url`` (its search_path), dropped afterwards."""
    base = make_engine(url)
    try:
        with base.connect():
            pass
    except OperationalError as exc:
        base.dispose()
        raise Unreachable(f"PostgreSQL at {url} unreachable: {exc.orig}") from exc
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with base.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = make_engine(f"{url}?options=-csearch_path%3D{schema}")
    try:
        yield db
    finally:
        db.dispose()
        with base.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        base.dispose()


def save_report(text_: str, stamp: str, name: str) -> Path:
    """Keep a report (JSON text) as bench/results/<stamp>-<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp}-{name}.json"
    path.write_text(text_ + "\n")
    return path


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds a process has used (Linux ``/proc``): figures the other
    load on a shared machine disturbs far less than a rate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    return sum(cpu_times(pid))
