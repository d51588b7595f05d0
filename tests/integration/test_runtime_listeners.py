"""The listeners the runtime opens beside its channels: the admin listener (before the database
is ready), the record listener and the alert service; every port bound first, or none."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.channels.loader import load_channels
from engine.runtime.listeners import ListenersUnavailable, Reservation
from engine.runtime.wiring import Engine
from tests.e2e.engine_process import AIGUILLAGE
from tests.integration.runtime_harness import (
    MLLP,
    RunningEngine,
    ports,
    send,
    wait_for,
    write_config,
)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """A port another program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def test_the_admin_listener_answers_while_the_database_is_out_and_readyz_says_why(
    tmp_path: Path,
) -> None:
    channel, admin = ports(2)
    path = write_config(
        tmp_path, MLLP.format(name="lab", description="a", port=channel), admin=admin
    )
    path.write_text(
        path.read_text().replace(
            "sqlite:///engine.db", "postgresql+psycopg://postgres@127.0.0.1:1/test"
        )
    )
    engine = Engine(load_channels(path), "all", path)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    starting = asyncio.run_coroutine_threadsafe(engine.start(), loop)
    try:
        wait_for(lambda: not refused(admin))
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=10)
        assert ready.status_code == 503
        assert any(r.startswith("journal: not writable") for r in ready.json()["reasons"])
        assert not starting.done()  # still waiting for its database
        assert refused(channel)  # channels open once the journal is writable
    finally:
        asyncio.run_coroutine_threadsafe(engine.stop(), loop).result(30)
        starting.result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert refused(admin)


def test_a_port_in_use_names_its_channel_and_nothing_is_left_listening(
    tmp_path: Path, held: socket.socket
) -> None:
    first, admin = ports(2)
    busy = held.getsockname()[1]
    path = write_config(
        tmp_path,
        MLLP.format(name="first", description="a", port=first),
        MLLP.format(name="second", description="b", port=busy),
        admin=admin,
    )
    with pytest.raises(ListenersUnavailable) as caught:
        RunningEngine(path)
    assert caught.value.lines() == [f"channel second: port {busy} on 127.0.0.1 is in use"]
    assert refused(first) and refused(admin)


def test_a_port_taken_after_the_reservation_stops_every_listener_already_open(
    tmp_path: Path, held: socket.socket
) -> None:
    first, admin = ports(2)
    busy = held.getsockname()[1]
    path = write_config(
        tmp_path,
        MLLP.format(name="first", description="a", port=first),
        MLLP.format(name="second", description="b", port=busy),
        admin=admin,
    )
    engine = Engine(load_channels(path), "all", path)

    async def start_without_reservation() -> None:
        await engine.start(Reservation())  # as if the port went between check and bind

    with pytest.raises(ListenersUnavailable) as caught:
        asyncio.run(start_without_reservation())
    assert "channel second: port" in str(caught.value)
    assert refused(first) and refused(admin)


def test_run_with_the_admin_port_in_use_names_it_and_exits_1_without_traceback(
    tmp_path: Path, held: socket.socket
) -> None:
    [first] = ports(1)
    busy = held.getsockname()[1]
    path = write_config(tmp_path, MLLP.format(name="first", description="a", port=first))
    path.write_text(path.read_text().replace("port: 0}", f"port: {busy}}}"))
    done = subprocess.run(
        [str(AIGUILLAGE), "run", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"the admin listener: port {busy} on 127.0.0.1 is in use" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert refused(first)


def _run(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(AIGUILLAGE), "run", "--config", str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=path.parent,
    )


def _stop(proc: subprocess.Popen[str]) -> list[dict[str, object]]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _fired(db: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        return list(conn.execute("SELECT rule, channel FROM alerts WHERE resolved_at IS NULL"))


def test_run_serves_admin_record_and_alerts_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    channel, admin, record = ports(3)
    amqp = """
  - name: feed
    source: {type: amqp, queue: feed, broker: {url: "amqp://guest:guest@127.0.0.1:1/%2F"}}
    accept: ["*"]
    destinations: {files: {type: file, directory: out/feed}}
alerts:
  check_seconds: 1
  rules: [{type: source_down, name: feed_down, channels: [feed]}]
"""
    lab = MLLP.format(name="lab", description="a", port=channel)
    path = write_config(tmp_path, lab, amqp, admin=admin)
    path.write_text(
        path.read_text().replace(
            "channels:\n", f"  record_api: {{host: 127.0.0.1, port: {record}}}\nchannels:\n", 1
        )
    )
    proc = _run(path)
    try:
        wait_for(lambda: not refused(channel), 30)
        # The record listener starts after the channels (engine.runtime.wiring): a moment
        # later, not at once (CI failed on a slow run that asserted it at once).
        wait_for(lambda: not refused(record), 30)
        assert b"MSA|AA|" in send(channel, "L1")
        ready = httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=10)
        assert "channel feed: source not bound (waiting_for_broker)" in ready.json()["reasons"]
        pid = int((tmp_path / "var" / "aiguillage.pid").read_text())
        assert pid == proc.pid
        wait_for(lambda: _fired(tmp_path / "engine.db") == [("feed_down", "feed")], 15)
    finally:
        events = _stop(proc)
    assert events[-1]["event"] == "engine_stopped"
    assert {"admin_listening", "record_api_listening", "alerts_started"} <= {
        str(e["event"]) for e in events
    }
    assert refused(channel) and refused(admin) and refused(record)
    assert not (tmp_path / "var" / "aiguillage.pid").exists()


def test_the_console_role_serves_the_admin_listener_alone(tmp_path: Path) -> None:
    channel, admin = ports(2)
    path = write_config(tmp_path, MLLP.format(name="lab", description="a", port=channel))
    path.write_text(path.read_text().replace("port: 0}", f"port: {admin}}}"))
    proc = _run(path, "--role", "console")
    try:
        wait_for(lambda: not refused(admin), 30)
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
        time.sleep(0.3)
        assert refused(channel)
        assert not (tmp_path / "var" / "aiguillage.pid").exists()  # nothing here to reload
    finally:
        events = _stop(proc)
    assert events[-1]["event"] == "engine_stopped"
    assert refused(admin)


def test_a_call_stuck_in_the_loops_executor_does_not_hold_the_exit() -> None:
    """As a readiness probe on a frozen database: the process still ends after its loop."""
    script = (
        "import asyncio, threading, time\n"
        "from engine.runtime.threads import DaemonExecutor\n"
        "async def main():\n"
        "    asyncio.get_running_loop().set_default_executor(DaemonExecutor())\n"
        "    assert await asyncio.to_thread(sum, [1, 2]) == 3\n"
        "    asyncio.get_running_loop().run_in_executor(None, threading.Event().wait)\n"
        "    await asyncio.sleep(0.05)\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], timeout=30, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
