"""Reload with traffic flowing (``aiguillage run`` as a user starts it): while a sender sends
without pause to an unchanged channel, another channel is changed and reloaded over and over
(``aiguillage reload``, SIGHUP, and once an invalid file). The sender never sees a refused
connection or a missing ACK, and every message it sent is journaled once."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from engine.adapters.mllp_framing import frame
from tests.e2e.engine_process import AIGUILLAGE, EngineProcess
from tests.e2e.mllp_client import read_ack
from tests.integration.runtime_harness import MLLP, message, ports, send, wait_for, write_config

pytestmark = pytest.mark.slow


class SteadySender(threading.Thread):
    """Sends numbered messages until stopped, a new connection every ten: any error counts."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.sent: list[str] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                    for _ in range(10):
                        cid = f"S{n}"
                        n += 1
                        sock.sendall(frame(message(cid)))
                        ack = read_ack(sock)
                        if b"MSA|AA|" not in ack:
                            self.errors.append(f"{cid}: {ack[:60]!r}")
                        self.sent.append(cid)
            except OSError as exc:
                self.errors.append(f"S{n}: {type(exc).__name__}")


def _reload(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIGUILLAGE), "reload", "--config", str(config), "--reason", "test"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unchanged_channel_never_stops_answering_while_another_is_reloaded(
    tmp_path: Path,
) -> None:
    steady, changing, admin = ports(3)

    def channels(version: int) -> None:
        write_config(
            tmp_path,
            MLLP.format(name="steady", description="unchanged", port=steady),
            MLLP.format(name="changing", description=f"version {version}", port=changing),
            admin=admin,
        )

    channels(0)
    config = tmp_path / "channels.yaml"
    engine = EngineProcess(config, steady, f"sqlite:///{tmp_path / 'engine.db'}", tmp_path / "log")
    engine.start()
    sender = SteadySender(steady)
    try:
        sender.start()
        wait_for(lambda: len(sender.sent) > 50)
        for version in range(1, 4):
            channels(version)
            done = _reload(config)
            assert done.returncode == 0, done.stderr
            assert "restarted: changing" in done.stdout and "unchanged: steady" in done.stdout
            assert b"MSA|AA|" in send(changing, f"C{version}")
        channels(4)  # by SIGHUP, as a service manager would send it
        assert engine.proc is not None
        last = _outcome(tmp_path)
        engine.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: _outcome(tmp_path) != last, 10)
        assert _outcome(tmp_path)["outcome"]["restarted"] == ["changing"]
        config.write_text(config.read_text().replace("accept:", "acept:", 1))
        refused = _reload(config)
        assert refused.returncode == 1 and "acept" in refused.stderr
        time.sleep(0.5)
    finally:
        sender.stopping.set()
        sender.join(30)
        assert engine.terminate() == 0
    assert sender.errors == []
    assert len(sender.sent) > 100
    db = create_engine(f"sqlite:///{tmp_path / 'engine.db'}")
    with db.connect() as conn:
        counts = dict(
            conn.execute(
                text(
                    "SELECT control_id, count(*) FROM journal_messages "
                    "WHERE channel = 'steady' GROUP BY control_id"
                )
            ).all()
        )
        reloads = conn.execute(
            text("SELECT count(*) FROM admin_audit WHERE action = 'reload'")
        ).scalar()
    db.dispose()
    assert counts == {cid: 1 for cid in sender.sent}
    assert reloads == 3  # each reload command recorded under the OS login (the invalid one not)


def _outcome(tmp: Path) -> dict[str, Any]:
    """What the engine says its last reload did."""
    result: dict[str, Any] = json.loads((tmp / "var" / "aiguillage.reload.json").read_text())
    return result
