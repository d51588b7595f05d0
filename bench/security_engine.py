"""The engine under attack for bench/security.py: its temporary channels file (the MLLP and HTTP
channels of channels.yaml on free ports, optionally a TLS copy of the MLLP channel), what its
models make of that file, and what /proc, its journal and its log say about it."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import mllp_ingest as mi
import trustme
import yaml
from pydantic import BaseModel

from engine.channels.sources import HttpSourceConfig, MllpSourceConfig

#: Settings read back from the models for the report (those the model has).
LIMIT_KEYS = (
    "max_connections",
    "max_connections_per_peer",
    "frame_timeout_seconds",
    "idle_timeout_seconds",
    "max_pending_ack_bytes",
    "max_buffered_bytes",
    "tls_handshake_timeout_seconds",
    "allowed_peers",
    "max_message_bytes",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "auth",
    "junk",
)


@dataclass(frozen=True)
class Sizes:
    http_docs: int = 10
    http_elements: int = 1_500_000
    mllp_docs: int = 10
    mllp_elements: int = 600_000
    depth: int = 201
    idle: int = 1000
    trickle: int = 1000
    probe_messages: int = 500
    half_open: int = 20_000
    half_open_processes: int = 8
    #: Peer addresses the half-open connections come from (past any per-peer cap).
    half_open_addresses: int = 200
    mutations: int = 5000
    tls_messages: int = 5000


QUICK = Sizes(
    http_docs=2,
    http_elements=150_000,
    mllp_docs=2,
    mllp_elements=60_000,
    idle=50,
    trickle=50,
    probe_messages=100,
    half_open=400,
    half_open_processes=2,
    half_open_addresses=20,
    mutations=300,
    tls_messages=400,
)


@dataclass
class Running:
    eng: mi.EngineProcess
    mllp_port: int
    http_port: int
    tls_port: int | None
    ca_file: str | None
    effective: dict[str, Any]
    #: After the engine stopped: its exit code and what its log holds.
    log: dict[str, Any] = field(default_factory=dict)

    def fds(self) -> int | None:
        with contextlib.suppress(OSError):
            return len(os.listdir(f"/proc/{self.eng.pid}/fd"))
        return None

    def tree(self) -> list[int]:
        """The engine's pid and its descendants' (``pipeline: process`` runs a child)."""
        pids, i = [self.eng.pid], 0
        while i < len(pids):
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{pids[i]}/task"):
                    with open(f"/proc/{pids[i]}/task/{task}/children") as f:
                        pids.extend(int(c) for c in f.read().split())
            i += 1
        return pids

    def tree_rss_mb(self) -> float:
        total = 0
        for pid in self.tree():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
                total += next((int(x.split()[1]) for x in f if x.startswith("VmRSS:")), 0)
        return total / 1024

    def nofile_limit(self) -> int | None:
        with contextlib.suppress(OSError), open(f"/proc/{self.eng.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        return None

    def connection_caps(self) -> dict[str, int | None]:
        return {
            f"{kind}.max_connections": self.effective[kind].get("max_connections")
            for kind in ("mllp", "http")
        }

    def journal_summary(self) -> dict[str, Any]:
        """Rows by state and error code, bytes kept, and the refused payloads the engine only
        counted (``junk_suppressed`` rows: counts in ``properties``)."""
        conn = sqlite3.connect(f"file:{self.eng.db_path}?mode=ro", uri=True, timeout=30)
        try:
            by_code = conn.execute(
                "SELECT coalesce(error_code, ''), count(*), sum(length(raw)) "
                "FROM journal_messages GROUP BY 1"
            ).fetchall()
            counted = conn.execute(
                "SELECT properties FROM journal_messages WHERE error_code = 'junk_suppressed'"
            ).fetchall()
        finally:
            conn.close()
        suppressed = collections.Counter[str]()
        for (properties,) in counted:
            suppressed.update(json.loads(properties or "{}"))
        return {
            "states": mi.count_states(self.eng.db_path),
            "error_codes": {str(c): int(n) for c, n, _ in by_code},
            "raw_bytes": sum(int(b or 0) for _, _, b in by_code),
            "suppressed": dict(suppressed),
        }


class FdSampler:
    """The engine's open descriptors, sampled every 0.2 s in a thread while the block runs."""

    def __init__(self, run: Running) -> None:
        self.run = run
        self.max_fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.max_fds = max(self.max_fds, self.run.fds() or 0)

    def __enter__(self) -> FdSampler:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


def _supported(
    model: type[BaseModel], wanted: dict[str, Any], unsupported: list[str]
) -> dict[str, Any]:
    unsupported.extend(f"{model.__name__}.{k}" for k in wanted if k not in model.model_fields)
    return {k: v for k, v in wanted.items() if k in model.model_fields}


def _effective(model: type[BaseModel], source: dict[str, Any]) -> dict[str, Any]:
    dumped = model.model_validate(source).model_dump(mode="json")
    return {k: dumped[k] for k in LIMIT_KEYS if k in dumped}


def _certificates(tmp: Path) -> tuple[dict[str, str], str]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp / "server.pem", tmp / "server.key", tmp / "ca.pem"
    cert.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return {"cert_file": str(cert), "key_file": str(key)}, str(ca_file)


@contextlib.contextmanager
def engine(
    mllp_extra: dict[str, Any] | None = None,
    http_extra: dict[str, Any] | None = None,
    tls: bool = False,
) -> Iterator[Running]:
    tmp = Path(tempfile.mkdtemp(prefix="aiguillage-security-"))
    with open(mi.ROOT / "channels.yaml") as f:
        config = yaml.safe_load(f)
    db_path = tmp / "security.db"
    config["engine"]["database_url"] = f"sqlite:///{db_path}"
    config["engine"]["log_level"] = "warning"
    unsupported: list[str] = []
    mllp = next(c for c in config["channels"] if c["source"]["type"] == "mllp")
    http = next(c for c in config["channels"] if c["source"]["type"] == "http")
    mllp_port, http_port = mi.free_port(), mi.free_port()
    mllp["source"] |= {"port": mllp_port, "host": "127.0.0.1"}
    mllp["source"] |= _supported(MllpSourceConfig, mllp_extra or {}, unsupported)
    http["source"] |= {"port": http_port, "host": "127.0.0.1"}
    # The rejected documents must reach the parser: no sender token on the bench's channel.
    wanted = {"auth": "none", **(http_extra or {})}
    http["source"] |= _supported(HttpSourceConfig, wanted, unsupported)
    channels = [mllp, http]
    tls_port, ca_file = None, None
    if tls and "tls" in MllpSourceConfig.model_fields:
        settings, ca_file = _certificates(tmp)
        tls_port = mi.free_port()
        secure = {**mllp, "name": f"{mllp['name']}_tls"}
        secure["source"] = {**mllp["source"], "port": tls_port, "tls": settings}
        channels.append(secure)
    config["channels"] = channels
    config_path = tmp / "channels.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    effective = {
        "mllp": _effective(MllpSourceConfig, mllp["source"]),
        "http": _effective(HttpSourceConfig, http["source"]),
        "unsupported": unsupported,
    }
    ports = (mllp_port, http_port, *((tls_port,) if tls_port else ()))
    try:
        with mi.launch(tmp, config_path, db_path, ports) as eng:
            run = Running(eng, mllp_port, http_port, tls_port, ca_file, effective)
            yield run
        run.log = log_summary(eng.log_path) | {"exit_code": eng.proc.returncode}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def log_summary(path: Path) -> dict[str, Any]:
    """Size, traceback and error lines, and the events logged at warning or above."""
    events: collections.Counter[str] = collections.Counter()
    lines = tracebacks = errors = 0
    with open(path, "rb") as f:
        for raw in f:
            lines += 1
            tracebacks += b"Traceback" in raw
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            level = record.get("level", "")
            errors += level in ("error", "critical", "exception")
            events[f"{level}:{record.get('event', '?')}"] += 1
    return {
        "bytes": path.stat().st_size,
        "lines": lines,
        "traceback_lines": tracebacks,
        "error_lines": errors,
        "events": dict(events.most_common()),
    }
