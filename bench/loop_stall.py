"""How long checking a large payload stalls the event loop (defect 6 of the trust boundary).

A 1 ms ticker runs on the loop while intake checks 15 MB documents of 1.5 M elements through
the engine's offload (inline, a thread, or the worker process, by size); prints JSON with the
longest gap between ticks (the stall every other connection sees) per mode, medians of runs.

    .venv/bin/python bench/loop_stall.py --runs 3 --documents 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from engine.intake import offload
from engine.intake.rules import DocumentRules
from engine.runtime.wiring import SWITCH_INTERVAL

LARGE = b'<ClinicalDocument xmlns="urn:hl7-org:v3">' + b'<a b="1"/>' * 1_500_000
LARGE += b"</ClinicalDocument>"


async def stall(documents: int, process_min: int) -> dict[str, float]:
    """The longest and p99 tick gaps (ms) while ``documents`` payloads are checked."""
    offload.PROCESS_MIN = process_min
    intake = DocumentRules("bench", ("CDA^*",), "UNICODE UTF-8")
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    elsewhere = offload.OFFLOAD.prepare_elsewhere
    await elsewhere(intake, LARGE + b"<!-- warm -->", "bench")  # pool started
    gaps.clear()
    for i in range(documents):
        prepared = await elsewhere(intake, LARGE + b"<!-- %d -->" % i, "bench")
        assert prepared.error is not None  # no id: refused after a full parse
    done.set()
    await task
    ordered = sorted(gaps)
    return {
        "max_gap_ms": round(ordered[-1] * 1000, 1),
        "p99_gap_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--documents", type=int, default=5)
    args = parser.parse_args()
    sys.setswitchinterval(SWITCH_INTERVAL)
    modes = {"thread": 1 << 62, "process": offload.PROCESS_MIN}
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for _ in range(args.runs):
        for mode, process_min in modes.items():
            runs[mode].append(asyncio.run(stall(args.documents, process_min)))
    report = {
        mode: {key: statistics.median(r[key] for r in results) for key in results[0]}
        | {"runs": results}
        for mode, results in runs.items()
    }
    report["target"] = "max_gap_ms <= 50 (no message may stall other connections > 50 ms)"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
