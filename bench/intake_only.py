"""Diagnostic: the engine's MLLP intake with the pipeline switched off.

Runs the real engine (same temporary channels file as mllp_ingest.py) in a subprocess where
``Worker.run_once`` does nothing (messages stay ``received``), so that nothing competes with
intake for the SQLite write lock or the GIL; then drives it at 1 and 16 synchronous
connections. Comparing with mllp_ingest.py's figures separates the cost of intake itself from
the cost of sharing the database with the pipeline. Per step it also reports, a message, the
engine process's CPU (user, system: ``/proc``) and context switches (all its threads), and its
journal group commits (count, mean rows and mean time, from ``/metrics``). Output: JSON on
stdout. Not a target measurement.

``python bench/intake_only.py [--messages 5000] [--durability full|normal]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import mllp_ingest as mi  # noqa: E402
from common import cpu_times  # noqa: E402


def serve(config: str) -> None:
    from engine.cli.main import app
    from engine.pipeline.worker import Worker

    def no_pipeline(self: Worker, *args: object, **kwargs: object) -> int:
        return 0

    setattr(Worker, "run_once", no_pipeline)  # noqa: B010 (monkeypatch for the diagnostic)
    app(["run", "--config", config])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--durability", choices=("full", "normal"), default=None)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    tmp = Path(tempfile.mkdtemp(prefix="aiguillage-intake-"))
    port = mi.free_port()
    config, _ = mi.engine_config(tmp, port, args.durability)
    env = {k: v for k, v in os.environ.items() if k != "AIGUILLAGE_DATABASE_URL"}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(config)],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    out: dict[str, object] = {
        "pipeline": "off (Worker.run_once patched to do nothing)",
        "durability": args.durability or "as configured",
    }
    try:
        mi.wait_listening(port, proc)
        batches = mi.Batches(args.messages, next_start=700_000_000)
        metrics = f"http://127.0.0.1:{yaml.safe_load(config.read_text())['engine']['admin']['port']}/metrics"
        for conns in (1, 16):
            before, commits_before = _usage(proc.pid), _commits(metrics)
            load = mi.run_load(port, batches.take(args.messages), conns)
            after, commits_after = _usage(proc.pid), _commits(metrics)
            out[f"intake_rate_{conns}"] = round(load.rate, 1)
            out[f"ack_p50_ms_{conns}"] = round(load.latency(0.5), 2)
            out[f"ack_p99_ms_{conns}"] = round(load.latency(0.99), 2)
            out[f"naks_{conns}"] = load.naks
            per = [(a - b) / args.messages for a, b in zip(after, before, strict=True)]
            out[f"engine_user_us_per_msg_{conns}"] = round(per[0] * 1e6, 1)
            out[f"engine_system_us_per_msg_{conns}"] = round(per[1] * 1e6, 1)
            out[f"engine_context_switches_per_msg_{conns}"] = round(per[2], 2)
            count = commits_after[0] - commits_before[0]
            if count:
                out[f"commits_{conns}"] = int(count)
                out[f"rows_per_commit_{conns}"] = round(args.messages / count, 1)
                seconds = commits_after[1] - commits_before[1]
                out[f"commit_ms_mean_{conns}"] = round(seconds / count * 1e3, 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2))


def _usage(pid: int) -> tuple[float, float, float]:
    """User and system CPU seconds of process ``pid``, and its threads' context switches."""
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if "ctxt_switches:" in line:  # voluntary and nonvoluntary
                switches += int(line.split()[1])
    return (*cpu_times(pid), float(switches))


def _commits(url: str) -> tuple[float, float]:
    """The engine's journal commits so far: how many, and their seconds in all."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    found = dict.fromkeys(("_count", "_sum"), 0.0)
    for line in text.splitlines():
        for suffix in found:
            if line.startswith(f"aiguillage_journal_commit_seconds{suffix} "):
                found[suffix] = float(line.split()[1])
    return found["_count"], found["_sum"]


if __name__ == "__main__":
    main()
