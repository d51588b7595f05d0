"""A RabbitMQ node of the test's own, for tests that stop and start a broker.

The machine's RabbitMQ (127.0.0.1:5672) serves other consumers: a test must never stop it.
A test that restarts a broker gets a node started here on free ports, with its database,
logs, plugins file and configuration in a temporary directory, and stopped afterwards
(``rabbitmqctl -n NODE stop``). Debian's ``rabbitmq-server`` and ``rabbitmqctl`` run as the
``rabbitmq`` user when started by root, so the directory is given to that user and the node
shares its Erlang cookie with ``rabbitmqctl``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.engine_process import free_port

_SERIAL = itertools.count(1)
STARTUP_SECONDS = 90


@dataclass
class PrivateRabbit:
    """One node: ``aig-test-<pid>-<n>@localhost`` listening on ``port`` (guest/guest)."""

    node: str
    port: int
    dist_port: int
    base: Path

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            # The machine's rabbitmq.conf names its own listener (5672): ours replaces it.
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
        }

    def ctl(self, *args: str, timeout: float = 120) -> None:
        """``rabbitmqctl -n NODE ...``: always this node, never the machine's."""
        subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args],
            check=True,
            capture_output=True,
            timeout=timeout,
            env=self.env(),
        )

    def start(self) -> None:
        subprocess.run(
            ["rabbitmq-server", "-detached"], check=True, capture_output=True, env=self.env()
        )
        self._await_startup()

    def restart(self, pause: float = 1.0) -> None:
        """Stop and start the broker application (the node stays up)."""
        self.ctl("stop_app")
        time.sleep(pause)
        self.start_app()

    def start_app(self) -> None:
        # The listening socket may outlive stop_app by a moment (eaddrinuse): try again.
        deadline = time.monotonic() + 30
        while True:
            try:
                self.ctl("start_app")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.ctl("await_startup")

    def stop(self) -> None:
        """Stop the node; kill it by its pid if it does not answer."""
        try:
            self.ctl("stop", timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pid = self._pid()
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)

    def _await_startup(self) -> None:
        """``await_startup`` answers at once while the node is not registered yet: poll."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                self.ctl("await_startup", timeout=STARTUP_SECONDS)
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.node} did not start: {self.base}/log") from None
                time.sleep(0.5)

    def _pid(self) -> int | None:
        pid_file = self.base / "mnesia" / f"{self.node}.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(pid_file.read_text().strip())
        return None


def new_private_rabbit() -> PrivateRabbit:
    """A node's directory prepared (not started)."""
    base = Path(tempfile.mkdtemp(prefix="aig-rabbit-"))
    port = free_port()
    (base / "mnesia").mkdir()
    (base / "log").mkdir()
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n")
    if os.geteuid() == 0:
        _give_to_rabbitmq(base)
    node = f"aig-test-{os.getpid()}-{next(_SERIAL)}@localhost"
    return PrivateRabbit(node=node, port=port, dist_port=free_port(), base=base)


def _give_to_rabbitmq(base: Path) -> None:
    """Root's ``rabbitmq-server`` runs the node as ``rabbitmq``: it must own its files."""
    try:
        user = pwd.getpwnam("rabbitmq")
    except KeyError:
        return
    base.chmod(0o755)
    for path in [base, *base.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)


def _servers_or_skip() -> None:
    if shutil.which("rabbitmq-server") and shutil.which("rabbitmqctl"):
        return
    if os.environ.get("CI"):
        pytest.fail("rabbitmq-server and rabbitmqctl are needed to restart a broker, CI is set")
    pytest.skip("rabbitmq-server or rabbitmqctl absent (and CI unset)")


@pytest.fixture(name="private_rabbit")
def private_rabbit_fixture() -> Iterator[PrivateRabbit]:
    """A RabbitMQ node started for this test alone, stopped after it (import this function
    into the test module to use the fixture ``private_rabbit``)."""
    _servers_or_skip()
    rabbit = new_private_rabbit()
    try:
        rabbit.start()
        yield rabbit
    finally:
        rabbit.stop()
