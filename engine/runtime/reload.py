"""What a reload of ``channels.yaml`` changes, and how ``aiguillage reload`` reaches the running
engine: a pid file beside the channels file (``var/aiguillage.pid``), SIGHUP, and the outcome
the engine writes back (``var/aiguillage.reload.json``), which the command waits for.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog

from engine.admin.state import ReloadOutcome
from engine.channels.config import ChannelsFile
from engine.channels.loader import ConfigError
from engine.runtime.ports import listeners

log = structlog.get_logger("engine")

PID_FILE = Path("var/aiguillage.pid")
OUTCOME_FILE = Path("var/aiguillage.reload.json")


@dataclass(frozen=True, slots=True)
class Plan:
    unchanged: tuple[str, ...]
    restarted: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    #: Channels whose listening address is new (added, or changed to another port).
    new_ports: tuple[str, ...]

    def outcome(self) -> ReloadOutcome:
        return ReloadOutcome(self.unchanged, self.restarted, self.added, self.removed)


def plan(old: ChannelsFile, new: ChannelsFile) -> Plan:
    """Compare the enabled channels: a channel is changed when any of its settings differ."""
    before = {c.name: c for c in old.channels if c.enabled}
    after = {c.name: c for c in new.channels if c.enabled}
    kept = [n for n in after if n in before]
    old_ports = {(x.owner, x.host, x.port) for x in listeners(old)}
    moved = [
        x.owner.removeprefix("channel ")
        for x in listeners(new)
        if x.owner.startswith("channel ") and (x.owner, x.host, x.port) not in old_ports
    ]
    return Plan(
        unchanged=tuple(n for n in kept if before[n] == after[n]),
        restarted=tuple(n for n in kept if before[n] != after[n]),
        added=tuple(n for n in after if n not in before),
        removed=tuple(n for n in before if n not in after),
        new_ports=tuple(moved),
    )


def _beside(config_path: Path, relative: Path) -> Path:
    return config_path.resolve().parent / relative


def write_pid(config_path: Path | None) -> None:
    if config_path is None:
        return
    path = _beside(config_path, PID_FILE)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{os.getpid()}\n")
    except OSError as exc:  # SIGHUP and the admin API still reload
        log.warning("pid_file_unwritable", path=str(path), error=exc.strerror)


def remove_pid(config_path: Path | None) -> None:
    if config_path is None:
        return
    path = _beside(config_path, PID_FILE)
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


def write_outcome(
    config_path: Path | None,
    outcome: ReloadOutcome | None = None,
    error: Exception | None = None,
) -> None:
    """What the last reload did, or why it changed nothing (issues only: no message data)."""
    if config_path is None:
        return
    record: dict[str, object] = {"pid": os.getpid(), "at": time.time()}
    if outcome is not None:
        record["outcome"] = asdict(outcome)
    elif isinstance(error, ConfigError):
        record["errors"] = [str(issue) for issue in error.issues]
    else:
        record["errors"] = [str(error)]
    path = _beside(config_path, OUTCOME_FILE)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record))
        temporary.replace(path)  # a reader never sees half a file
    except OSError as exc:
        log.warning("reload_outcome_unwritable", path=str(path), error=exc.strerror)


class NoRunningEngine(Exception):
    pass


def request_reload(config_path: Path, timeout: float) -> dict[str, object] | None:
    """SIGHUP to the engine of ``config_path``; its outcome, or None if none came in time."""
    pid_file = _beside(config_path, PID_FILE)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        raise NoRunningEngine(f"no engine pid file at {pid_file}") from None
    sent = time.time()
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise NoRunningEngine(f"no engine runs with pid {pid} (stale {pid_file})") from None
    outcome_file = _beside(config_path, OUTCOME_FILE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            record: dict[str, object] = json.loads(outcome_file.read_text())
        except (OSError, ValueError):
            record = {}
        at = record.get("at")
        if record.get("pid") == pid and isinstance(at, float) and at >= sent:
            return record
        time.sleep(0.05)
    return None
