"""Reload of channels.yaml in a running engine: validated first, unchanged channels untouched,
changed ones restarted, added ones started, removed ones stopped with their waiting messages
left in the journal; the admin API, SIGHUP and ``aiguillage reload`` do the same."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from engine.adapters.mllp_framing import frame
from engine.admin.roles import Role
from engine.cli.main import app
from engine.pipeline.process_runner import ProcessRunner
from engine.pipeline.runner_thread import ThreadRunner
from tests.e2e.mllp_client import read_ack
from tests.integration.admin_harness import add_operators
from tests.integration.runtime_harness import (
    MLLP,
    RunningEngine,
    message,
    ports,
    send,
    wait_for,
    write_config,
)

#: A channel whose destination never answers: its message waits (retrying) in the journal.
STUCK = """
  - name: {name}
    source: {{type: mllp, port: {port}}}
    accept: ["*"]
    destinations: {{web: {{type: http, url: "http://127.0.0.1:1/in", timeout_seconds: 1}}}}
    errors: {{max_attempts: 50, backoff: {{initial_seconds: 0.2, max_seconds: 0.2}}}}
"""


class Reloading:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.keep, self.change, self.gone, self.added = ports(4)
        self.path = write_config(
            tmp,
            MLLP.format(name="keep", description="kept", port=self.keep),
            MLLP.format(name="change", description="before", port=self.change),
            STUCK.format(name="gone", port=self.gone),
        )
        self.running = RunningEngine(self.path)
        self.token = add_operators(self.running.engine.db)[Role.ADMIN]

    def rewrite(self, *channels: str) -> None:
        write_config(self.tmp, *channels)

    def reload(self) -> httpx.Response:
        return httpx.post(
            f"{self.running.admin_url}/api/v1/reload",
            headers={"Authorization": f"Bearer {self.token}"},
            json={"reason": "test"},
            timeout=60,
        )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Reloading]:
    reloading = Reloading(tmp_path)
    try:
        yield reloading
    finally:
        reloading.running.stop()


def test_reload_restarts_changed_starts_added_stops_removed_and_leaves_the_others_alone(
    setup: Reloading,
) -> None:
    engine = setup.running.engine
    runner = engine.runner
    assert isinstance(runner, ThreadRunner)
    kept_source = engine.channels.runners["keep"].source
    kept_pipeline = runner.worker.pipelines["keep"]
    changed_source = engine.channels.runners["change"].source
    with socket.create_connection(("127.0.0.1", setup.keep), timeout=10) as kept_connection:
        setup.rewrite(
            MLLP.format(name="keep", description="kept", port=setup.keep),
            MLLP.format(name="change", description="after", port=setup.change),
            MLLP.format(name="added", description="new", port=setup.added),
        )
        answer = setup.reload()
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "unchanged": ["keep"],
            "restarted": ["change"],
            "added": ["added"],
            "removed": ["gone"],
        }
        kept_connection.sendall(frame(message("K1")))  # the same connection goes on
        assert b"MSA|AA|" in read_ack(kept_connection)
    assert engine.channels.runners["keep"].source is kept_source
    assert runner.worker.pipelines["keep"] is kept_pipeline
    assert engine.channels.runners["change"].source is not changed_source
    assert b"MSA|AA|" in send(setup.change, "C1")
    assert b"MSA|AA|" in send(setup.added, "A1")
    with pytest.raises(ConnectionRefusedError):
        send(setup.gone, "G1")
    assert list(engine.channels.runners) == ["keep", "change", "added"]
    assert [c.name for c in engine.config.channels] == ["keep", "change", "added"]
    assert "gone" not in runner.worker.pipelines


def test_a_removed_channels_waiting_messages_stay_in_the_journal_untouched(
    setup: Reloading,
) -> None:
    assert b"MSA|AA|" in send(setup.gone, "W1")
    rows = "SELECT channel, state, attempts FROM journal_messages WHERE control_id = 'W1'"
    wait_for(lambda: setup.running.rows(rows)[0][1] == "retrying")
    setup.rewrite(MLLP.format(name="keep", description="kept", port=setup.keep))
    assert setup.reload().status_code == 200
    before = setup.running.rows(rows)
    time.sleep(1.0)  # five retries' worth, were it still taken
    assert before[0][:2] == ("gone", "retrying")
    assert setup.running.rows(rows) == before  # no longer taken by any pipeline


def test_an_invalid_file_changes_nothing_and_the_errors_are_reported(setup: Reloading) -> None:
    engine = setup.running.engine
    sources = {n: r.source for n, r in engine.channels.runners.items()}
    setup.path.write_text(setup.path.read_text().replace("accept:", "acept:", 1))
    answer = setup.reload()
    assert answer.status_code == 400
    assert "channels.yaml is invalid, nothing changed" in answer.text
    assert "acept" in answer.text
    assert {n: r.source for n, r in engine.channels.runners.items()} == sources
    outcome = json.loads((setup.tmp / "var" / "aiguillage.reload.json").read_text())
    assert outcome["pid"] == os.getpid() and any("acept" in e for e in outcome["errors"])


def test_a_reload_whose_new_port_is_in_use_names_it_and_changes_nothing(
    setup: Reloading,
) -> None:
    engine = setup.running.engine
    sources = {n: r.source for n, r in engine.channels.runners.items()}
    with socket.create_server(("127.0.0.1", 0)) as held:
        busy = held.getsockname()[1]
        setup.rewrite(
            MLLP.format(name="keep", description="kept", port=setup.keep),
            MLLP.format(name="added", description="new", port=busy),
        )
        answer = setup.reload()
    assert answer.status_code == 400
    outcome = json.loads((setup.tmp / "var" / "aiguillage.reload.json").read_text())
    [error] = outcome["errors"]
    assert error.endswith(f": channel added: port {busy} on 127.0.0.1 is in use")
    assert {n: r.source for n, r in engine.channels.runners.items()} == sources
    assert b"MSA|AA|" in send(setup.change, "C2")


def test_the_reload_command_validates_first_and_says_when_no_engine_runs(tmp_path: Path) -> None:
    [port] = ports(1)
    path = write_config(tmp_path, MLLP.format(name="keep", description="kept", port=port))
    runner = CliRunner()
    done = runner.invoke(app, ["reload", "--config", str(path)])
    assert done.exit_code == 2  # no journal database: no engine ever ran here
    path.write_text(path.read_text().replace("accept:", "acept:", 1))
    done = runner.invoke(app, ["reload", "--config", str(path)])
    assert done.exit_code == 1 and "acept" in done.output


def test_with_the_pipeline_in_its_own_process_a_reload_restarts_it_on_the_new_file(
    tmp_path: Path,
) -> None:
    keep, change = ports(2)
    path = write_config(
        tmp_path,
        MLLP.format(name="keep", description="kept", port=keep),
        MLLP.format(name="change", description="before", port=change),
    )
    path.write_text(path.read_text().replace("durability: normal", "pipeline: process"))
    running = RunningEngine(path)
    try:
        process = running.engine.runner
        assert isinstance(process, ProcessRunner)
        first = process.process.pid
        path.write_text(path.read_text().replace("description: before", "description: after"))
        outcome = running.call(running.engine.channels.reload(), 60)
        assert outcome.restarted == ("change",)
        assert process.process.pid != first and process.process.is_alive()
        assert b"MSA|AA|" in send(change, "P1") and b"MSA|AA|" in send(keep, "P2")
        delivered = "SELECT count(*) FROM journal_messages WHERE state = 'delivered'"
        wait_for(lambda: running.rows(delivered)[0][0] == 2, 20)
    finally:
        running.stop()
