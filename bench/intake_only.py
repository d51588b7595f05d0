"""Diagnostic: the engine's MLLP intake with the pipeline switched off.

Runs the real engine (same temporary channels file as mllp_ingest.py) in a subprocess where
``Worker.run_once`` does nothing (messages stay ``received``), so that nothing competes with
intake for the SQLite write lock or the GIL; then drives it at 1 and 16 synchronous
connections. Comparing with mllp_ingest.py's figures separates the cost of intake itself from
the cost of sharing the database with the pipeline. Output: JSON on stdout. Not a target
measurement.

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
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import mllp_ingest as mi  # noqa: E402


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
        for conns in (1, 16):
            load = mi.run_load(port, batches.take(args.messages), conns)
            out[f"intake_rate_{conns}"] = round(load.rate, 1)
            out[f"ack_p50_ms_{conns}"] = round(load.latency(0.5), 2)
            out[f"ack_p99_ms_{conns}"] = round(load.latency(0.99), 2)
            out[f"naks_{conns}"] = load.naks
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
