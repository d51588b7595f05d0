"""The runtime picks the pipeline runner from the configuration, explicitly: the writer thread
by default, a process of its own with ``engine.pipeline: process``, the distributed workers for
``--role intake`` (which needs a database every process shares)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.channels.loader import parse_channels
from engine.database_state import DatabaseState
from engine.db import make_engine
from engine.distributed.publisher import WorkPublisher
from engine.pipeline.process_runner import ProcessRunner
from engine.pipeline.runner_thread import ThreadRunner
from engine.runtime.wiring import Role, build_runner

CHANNELS = """
engine: {{database_url: "{url}"{extra}}}
channels:
  - name: lab
    source: {{type: mllp, port: 2575}}
    accept: ["ADT^*"]
    destinations: {{twin: {{type: memory, box: runner-choice}}}}
"""


def runner(tmp_path: Path, extra: str = "", role: Role = "all", url: str = "") -> object:
    url = url or f"sqlite:///{tmp_path / 'engine.db'}"
    config = parse_channels(CHANNELS.format(url=url, extra=extra))
    db = make_engine(url)
    try:
        return build_runner(config, role, db, url, DatabaseState(url))
    finally:
        db.dispose()


def test_the_pipeline_runs_in_the_writer_thread_by_default(tmp_path: Path) -> None:
    built = runner(tmp_path)
    assert isinstance(built, ThreadRunner)
    assert list(built.worker.pipelines) == ["lab"]


def test_pipeline_process_runs_it_in_a_process_of_its_own(tmp_path: Path) -> None:
    built = runner(tmp_path, ", pipeline: process")
    assert isinstance(built, ProcessRunner)
    assert built.process is None  # started with the engine, not when built


def test_a_distributed_intake_hands_work_to_the_workers_and_needs_postgresql(
    tmp_path: Path,
) -> None:
    with pytest.raises(SystemExit, match="PostgreSQL"):
        runner(tmp_path, role="intake")
    nowhere = "postgresql+psycopg://engine@127.0.0.1:1/engine"  # built, never connected
    assert isinstance(runner(tmp_path, role="intake", url=nowhere), WorkPublisher)
