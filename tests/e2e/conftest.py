"""Fixtures that run the engine as a separate process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.engine_process import STARTED, EngineProcess, free_port, write_channels


@pytest.fixture(autouse=True)
def no_engine_left_running() -> Iterator[None]:
    """Kill what a test started, even when it failed half way."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.alive():
            proc.kill()


@pytest.fixture
def engine_proc(tmp_path: Path) -> Iterator[EngineProcess]:
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'engine.db'}"
    proc = EngineProcess(write_channels(tmp_path, port, db_url), port, db_url, tmp_path / "log")
    proc.start()
    yield proc
    if proc.alive():
        proc.kill()
