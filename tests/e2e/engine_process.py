"""Start the real engine (``aiguillage run``) as a subprocess, as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
AIGUILLAGE = Path(sys.executable).with_name("aiguillage")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_channels(tmp: Path, port: int, db_url: str, **engine: Any) -> Path:
    """The repository's channels.yaml on a test database: its MLLP channel on ``port``, the
    other listeners on free ports, watched directories under ``tmp``, AMQP channels off."""
    config = yaml.safe_load((REPO / "channels.yaml").read_text())
    config["engine"].update(database_url=db_url, **engine)
    for listener in ("admin", "record_api"):  # two engines in one run must not share them
        if config["engine"].get(listener):
            config["engine"][listener]["port"] = free_port()
    ports = iter([port])
    for channel in config["channels"]:
        source = channel["source"]
        if source["type"] == "directory":
            source["path"] = str(tmp / "inbox" / channel["name"])
        elif source["type"] == "amqp":  # tests/integration/test_amqp_* cover these
            channel["enabled"] = False
        else:
            source["port"] = next(ports, None) or free_port()
    path = tmp / "channels.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


#: Every engine process started, so that a failing test cannot leave one running.
STARTED: list[EngineProcess] = []


@dataclass
class EngineProcess:
    config: Path
    port: int
    db_url: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    #: More ``aiguillage run`` options (``--role worker``).
    args: tuple[str, ...] = ()
    #: A log line that says it is ready, for a process without a port (a worker).
    ready_line: str = ""

    def start(self, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if k != "AIGUILLAGE_DATABASE_URL"}
        env.update(self.env)
        logged = self.log.stat().st_size if self.log.exists() else 0  # a restart appends
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(AIGUILLAGE), "run", "--config", str(self.config), *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.config.parent,
            )
        STARTED.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited at start:\n{self.log.read_text()[-3000:]}")
            if self.ready_line:
                if self.ready_line in self.log.read_text()[logged:]:
                    return
                time.sleep(0.05)
                continue
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("engine did not open its port")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def children(self) -> list[int]:
        """Processes the engine started (its pipeline process), from /proc."""
        assert self.proc is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                found.append(int(stat.parent.name))
        return found

    @staticmethod
    def gone(pids: list[int], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(_running(pid) for pid in pids):
                return True
            time.sleep(0.05)
        return False

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def scalar(self, sql: str) -> Any:
        return self.column(sql)[0]

    def column(self, sql: str) -> list[Any]:
        """The first column of a query on the engine's database (read by a separate client)."""
        db = create_engine(self.db_url)
        try:
            with db.connect() as conn:
                return [r[0] for r in conn.execute(text(sql))]
        finally:
            db.dispose()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until no message is waiting for the pipeline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.scalar(
                "SELECT count(*) FROM journal_messages WHERE state IN ('received', 'retrying')"
            ):
                return
            time.sleep(0.1)
        raise AssertionError("the pipeline did not finish in time")


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container may have no init to reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
