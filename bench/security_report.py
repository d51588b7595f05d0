"""The report of bench/security.py: medians of the numbers over the runs, the rest per run, and
the issue's targets read from them."""

from __future__ import annotations

import statistics
from typing import Any


def flatten(prefix: str, value: Any, numbers: dict[str, float], other: dict[str, Any]) -> None:
    """Numbers (medians are taken of them) apart from everything else (kept per run)."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, numbers, other)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        numbers[prefix] = float(value)
    else:
        other[prefix] = value


def summarize(runs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    flat = []
    details = []
    for run in runs:
        numbers: dict[str, float] = {}
        other: dict[str, Any] = {}
        flatten("", run, numbers, other)
        flat.append(numbers)
        details.append(other)
    keys = sorted({k for numbers in flat for k in numbers})
    metrics = {
        k: {
            "runs": [None if (v := n.get(k)) is None else round(v, 2) for n in flat],
            "median": statistics.median(v for n in flat if (v := n.get(k)) is not None),
        }
        for k in keys
    }
    return metrics, details


def targets(metrics: dict[str, Any], details: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float | None:
        entry = metrics.get(key)
        return None if entry is None else float(entry["median"])

    def target(key: str, op: str, limit: float) -> dict[str, Any]:
        value = med(key)
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        return {"key": key, "value": value, "target": f"{op} {limit:g}", "met": met}

    def every_run(key: str) -> dict[str, Any]:
        values = [d.get(key) for d in details]
        met = None if all(v is None for v in values) else all(v is True for v in values)
        return {"key": key, "runs": values, "met": met}

    return {
        "rss delta <= 100 MB": target("rss.delta_mb", "<=", 100),
        "held: ACK p99 <= 100 ms": target("held.ack_p99_ms", "<=", 100),
        "held: every probe message answered": target("held.unanswered", "<=", 0),
        "half_open: every MLLP message answered": target("half_open.unanswered", "<=", 0),
        "half_open: descriptors within the caps": every_run("half_open.within_caps"),
        "half_open: held connections within the HTTP cap": every_run(
            "half_open.held_open_within_http_cap"
        ),
        "half_open: engine alive": every_run("half_open.engine_alive"),
        "fuzz: none left without a word": target("fuzz.silent_pct", "<=", 0),
        "fuzz: engine alive": every_run("fuzz.engine_alive"),
        "fuzz: no traceback in the log": target("fuzz.log.traceback_lines", "<=", 0),
        "fuzz: no error line in the log": target("fuzz.log.error_lines", "<=", 0),
        "fuzz_budget: every closed connection logged or counted": target(
            "fuzz_budget.closed_not_counted", "<=", 0
        ),
        "fuzz_budget: none left without a word": target("fuzz_budget.silent_pct", "<=", 0),
        "fuzz_budget: no traceback in the log": target("fuzz_budget.log.traceback_lines", "<=", 0),
    }
