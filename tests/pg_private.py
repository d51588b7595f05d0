"""A PostgreSQL server of the test's own, on a free port, that the test may stop, restart and
freeze (SIGSTOP) without touching the machine's server.

The cluster is made once per session (``initdb``, as the ``postgres`` user when the tests run
as root: initdb refuses root) and copied for each server, which then starts in well under a
second. Only the processes of this data directory's postmaster are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from glob import glob
from pathlib import Path

from tests.e2e.engine_process import free_port

_TEMPLATE: list[Path] = []


def binaries() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` directory (Debian's layout), or None."""
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _owner() -> str | None:
    """The user the server runs as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    pwd.getpwnam("postgres")  # KeyError: no such user, the fixture skips
    return "postgres"


def _run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    owner = _owner()
    command = ["runuser", "-u", owner, "--", *args] if owner else list(args)
    return subprocess.run(
        command, check=check, capture_output=True, text=True, timeout=timeout, cwd="/"
    )


def _private_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    owner = _owner()
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _template(bin_dir: Path) -> Path:
    if not _TEMPLATE:
        root = _private_dir("aiguillage-pg-template-")
        _run(str(bin_dir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres")
        _TEMPLATE.append(root)
    return _TEMPLATE[0] / "data"


def remove_template() -> None:
    while _TEMPLATE:
        shutil.rmtree(_TEMPLATE.pop(), ignore_errors=True)


class PrivatePostgres:
    """One server: ``start``, ``stop(mode)``, ``restart``, ``freeze``/``thaw``, ``url``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = _private_dir("aiguillage-pg-")
        self.data = self.root / "data"
        _run("cp", "-a", str(_template(bin_dir)), str(self.data))
        self.port = free_port()
        self.frozen: list[int] = []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def where(self) -> str:
        """How the engine names this database in its logs."""
        return f"127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(str(self.bin / "pg_ctl"), "-D", str(self.data), *args, check=check)

    def start(self) -> None:
        # fsync off is safe here (a stop kills the server, never the machine), synchronous_commit
        # off is not: an immediate stop would lose the migrations the engine just committed.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c full_page_writes=off"
        )
        self._ctl("start", "-w", "-t", "30", "-l", str(self.root / "log"), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (clients' sessions end with "terminating connection due to administrator
        command"), ``immediate`` (killed, crash recovery at the next start)."""
        self.thaw()
        self._ctl("stop", "-w", "-t", "30", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def postmaster(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def processes(self) -> list[int]:
        """The postmaster of this data directory and its children (the backends)."""
        main = self.postmaster()
        if main is None:
            return []
        found = [main]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == main:
                found.append(int(stat.parent.name))
        return found

    def freeze(self) -> None:
        """SIGSTOP the server and its backends: connections stay open and nothing answers.

        The postmaster first (stopped, it starts no process), then its children as listed
        after: one may have ended in between (an autovacuum worker comes and goes), and it has
        nothing left to freeze."""
        main = self.postmaster()
        assert main is not None, "the private PostgreSQL is not running"
        os.kill(main, signal.SIGSTOP)
        self.frozen = [main]
        for pid in self.processes()[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                self.frozen.append(pid)

    def thaw(self) -> None:
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (
            _run(
                str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), check=False
            ).returncode
            != 0
        ):
            assert time.monotonic() < deadline, "the private PostgreSQL is not ready"
            time.sleep(0.05)

    def destroy(self) -> None:
        self.thaw()
        if self.postmaster() is not None:
            self._ctl("stop", "-w", "-t", "30", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
