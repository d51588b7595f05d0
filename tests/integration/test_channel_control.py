"""Pause, resume and restart of a running channel through the admin API (admin role, audited):
senders of a paused MLLP channel wait rather than fail, HTTP senders get 503 with Retry-After,
a watched directory is not polled."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.adapters.mllp_framing import frame
from engine.admin.roles import Role
from engine.pipeline.runner_thread import ThreadRunner
from tests.e2e.mllp_client import read_ack
from tests.integration.admin_harness import add_operators
from tests.integration.runtime_harness import (
    DIRECTORY,
    HTTP,
    MLLP,
    RunningEngine,
    message,
    ports,
    send,
    wait_for,
    write_config,
)


class Controlled:
    def __init__(self, running: RunningEngine) -> None:
        self.running = running
        self.tokens = add_operators(running.engine.db)

    def act(self, channel: str, action: str, role: Role = Role.ADMIN) -> httpx.Response:
        return httpx.post(
            f"{self.running.admin_url}/api/v1/channels/{channel}/{action}",
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
            json={"reason": f"test {action}"},
            timeout=30,
        )

    def journaled(self, cid: str) -> int:
        rows = self.running.rows(
            "SELECT count(*) FROM journal_messages WHERE control_id = :c", c=cid
        )
        return int(rows[0][0])


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Controlled]:
    mllp, http = ports(2)
    path = write_config(
        tmp_path,
        MLLP.format(name="lab", description="a", port=mllp),
        HTTP.format(name="web", port=http),
        DIRECTORY.format(name="files"),
    )
    running = RunningEngine(path)
    running.mllp_port, running.http_port = mllp, http  # type: ignore[attr-defined]
    try:
        yield Controlled(running)
    finally:
        running.stop()


def no_answer_within(sock: socket.socket, seconds: float) -> bool:
    """Neither a byte nor a close within ``seconds``."""
    sock.settimeout(seconds)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(10)
    return False


def test_a_paused_mllp_channel_keeps_its_senders_waiting_and_answers_them_on_resume(
    engine: Controlled,
) -> None:
    port: int = engine.running.mllp_port  # type: ignore[attr-defined]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as before:
        before.sendall(frame(message("P0")))
        assert b"MSA|AA|" in read_ack(before)
        assert engine.act("lab", "pause").status_code == 200
        assert engine.running.states()["lab"] == "paused"
        before.sendall(frame(message("P1")))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as after:  # backlog
            after.sendall(frame(message("P2")))
            assert no_answer_within(before, 0.5) and no_answer_within(after, 0.1)
            assert engine.journaled("P1") == engine.journaled("P2") == 0
            ready = httpx.get(f"{engine.running.admin_url}/readyz", timeout=10)
            assert ready.status_code == 200  # a paused channel is no fault
            assert engine.act("lab", "resume").status_code == 200
            assert b"MSA|AA|" in read_ack(before)
            assert b"MSA|AA|" in read_ack(after)
    assert engine.journaled("P1") == engine.journaled("P2") == 1
    assert engine.running.states()["lab"] == "running"


def test_a_paused_http_channel_answers_503_with_retry_after_and_journals_nothing(
    engine: Controlled,
) -> None:
    url = f"http://127.0.0.1:{engine.running.http_port}/in"  # type: ignore[attr-defined]
    headers = {"Content-Type": "x-application/hl7-v2+er7"}
    assert engine.act("web", "pause").status_code == 200
    paused = httpx.post(url, content=message("H1"), headers=headers, timeout=10)
    assert paused.status_code == 503
    assert paused.headers["Retry-After"] == "30"
    assert engine.journaled("H1") == 0
    assert engine.act("web", "resume").status_code == 200
    resumed = httpx.post(url, content=message("H1"), headers=headers, timeout=10)
    assert resumed.status_code < 300, resumed.text
    assert engine.journaled("H1") == 1


def test_a_paused_directory_channel_is_not_polled_until_resumed(
    engine: Controlled, tmp_path: Path
) -> None:
    assert engine.act("files", "pause").status_code == 200
    inbox = tmp_path / "inbox" / "files"
    (inbox / "one.hl7").write_bytes(message("D1"))
    time.sleep(0.6)  # six polls' worth
    assert (inbox / "one.hl7").exists() and engine.journaled("D1") == 0
    assert engine.act("files", "resume").status_code == 200
    wait_for(lambda: engine.journaled("D1") == 1)


def test_restart_rebuilds_the_source_and_pipeline_and_the_channel_answers_again(
    engine: Controlled,
) -> None:
    running = engine.running
    port: int = running.mllp_port  # type: ignore[attr-defined]
    source = running.engine.channels.runners["lab"].source
    runner = running.engine.runner
    assert isinstance(runner, ThreadRunner)
    pipeline = runner.worker.pipelines["lab"]
    assert engine.act("lab", "restart").status_code == 200
    assert running.engine.channels.runners["lab"].source is not source
    assert runner.worker.pipelines["lab"] is not pipeline
    assert b"MSA|AA|" in send(port, "R1")
    assert engine.journaled("R1") == 1


def test_channel_control_needs_the_admin_role_names_unknown_channels_and_is_audited(
    engine: Controlled,
) -> None:
    assert engine.act("lab", "pause", Role.OPERATOR).status_code == 403
    assert engine.act("nope", "pause").status_code == 404
    assert engine.act("lab", "pause").status_code == 200
    assert engine.act("lab", "resume").status_code == 200
    actions = engine.running.rows(
        "SELECT action, ids, reason FROM admin_audit WHERE target = 'channel' ORDER BY id"
    )
    assert actions[-2:] == [
        ("pause", '["lab"]', "test pause"),
        ("resume", '["lab"]', "test resume"),
    ]
