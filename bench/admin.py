"""Admin listener benchmark: message search over a large journal, /metrics and the dashboard.

A journal of ``--messages`` (default 1,000,000) messages over ``--channels`` (default 50)
channels and 30 days is bulk-loaded (bench/admin_load.py) with a record store of 200,000
patients; the admin listener runs in this process on a real socket and every figure is the
client's round trip (httpx, keep-alive). Search: ``--requests`` per filter, each with another
value (channel, sender, patient...); p99 compared with 100 ms. ``/metrics``: the scrape
(served from the journal snapshot the listener keeps fresh) compared with 50 ms, and the
snapshot itself (taken in the background every ``metrics_refresh_seconds``). Dashboard:
``/api/v1/channels`` and the ``/`` page, compared with 50 ms.

``python bench/admin.py [--messages 1000000] [--channels 50] [--requests 200]
[--database-url URL] [--keep PATH]``: ``--keep`` reuses (or makes) a SQLite file, so that a
second run skips the load. JSON on stdout, also saved to bench/results/<timestamp>-admin.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import admin_load as load  # noqa: E402

from engine.admin.roles import Role  # noqa: E402
from engine.admin.server import AdminServer  # noqa: E402
from engine.admin.tokens import add_token  # noqa: E402
from engine.channels.admin_settings import AdminSettings  # noqa: E402
from engine.channels.config import ChannelsFile  # noqa: E402
from engine.channels.loader import parse_channels  # noqa: E402
from engine.db import make_engine  # noqa: E402
from engine.journal.message_tables import messages  # noqa: E402
from engine.migrate import upgrade  # noqa: E402

SEARCH_TARGET_MS = 100.0
SCRAPE_TARGET_MS = 50.0
DASHBOARD_TARGET_MS = 50.0


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def channels_file(count: int) -> ChannelsFile:
    lines = ["channels:"]
    for i in range(count):
        lines += [
            f"  - name: ch_{i:02d}",
            f"    source: {{type: mllp, port: {20000 + i}}}",
            '    accept: ["*"]',
            "    destinations: {store: {type: record_store}}",
        ]
    config = parse_channels("\n".join(lines))
    admin = AdminSettings(host="127.0.0.1", port=0)
    return config.model_copy(update={"engine": config.engine.model_copy(update={"admin": admin})})


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(pick(0.95), 2),
        "p99_ms": round(pick(0.99), 2),
        "max_ms": round(ordered[-1], 2),
    }


def timed(
    client: httpx.Client, runs: int, make: Callable[[int], tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    samples, found = [], 0
    for i in range(runs):
        path, params = make(i)
        t = time.perf_counter()
        answer = client.get(path, params=params)
        samples.append((time.perf_counter() - t) * 1000)
        answer.raise_for_status()
        if answer.headers["content-type"].startswith("application/json"):
            body = answer.json()
            found += len(body["items"]) if isinstance(body, dict) and "items" in body else 1
    return {**percentiles(samples), "requests": runs, "results": found}


def searches(n: int, channels: int, end: datetime) -> dict[str, Callable[[int], dict[str, Any]]]:
    rng = random.Random(11)
    ch = lambda: f"ch_{rng.randrange(channels):02d}"  # noqa: E731
    day = lambda: end - timedelta(days=rng.randrange(1, 29))  # noqa: E731
    pid = lambda: rng.randrange(load.PATIENTS)  # noqa: E731
    return {
        "none (latest page)": lambda i: {},
        "channel": lambda i: {"channel": ch()},
        "state dead_lettered": lambda i: {"state": "dead_lettered"},
        "channel + state held": lambda i: {"channel": ch(), "state": "held"},
        "type ORU^R01": lambda i: {"type": "ORU^R01"},
        "type SIU (rare)": lambda i: {"type": "SIU"},
        "control id": lambda i: {"control_id": f"C{rng.randrange(n):09d}"},
        "sender": lambda i: {"sender": f"token:sender-{rng.randrange(load.SENDERS)}"},
        "time range (1 h, a past day)": lambda i: _hour(day()),
        "channel + time range": lambda i: {"channel": ch(), **_hour(day())},
        "patient 000003^^^CHU-X": lambda i: {"patient": f"{pid():06d}^^^CHU-X"},
        "patient 000003 + facility": lambda i: {"patient": f"{pid():06d}", "facility": "CHU-X"},
        "patient 000003 alone": lambda i: {"patient": f"{pid():06d}"},
        "patient INS": lambda i: {"patient": load.ins_of(pid())},
    }


def _hour(at: datetime) -> dict[str, str]:
    return {"since": at.isoformat(), "until": (at + timedelta(hours=1)).isoformat()}


class Served:
    def __init__(self, config: ChannelsFile, db: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = AdminServer(config, db)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def prepare(url: str, n: int, channels: int) -> tuple[Any, datetime]:
    db = make_engine(url, durability="normal")
    upgrade(db)
    with db.connect() as conn:
        have = conn.execute(select(func.count()).select_from(messages)).scalar_one()
        last = conn.execute(select(func.max(messages.c.received_at))).scalar()
    if have >= n and last is not None:
        log(f"reusing the {have:,} journaled messages")
        return db, last.replace(tzinfo=UTC) if last.tzinfo is None else last
    end = datetime.now(UTC)
    t = time.perf_counter()
    load.load(db, n, channels, end)
    load.load_patients(db, load.PATIENTS)
    log(f"loaded {n:,} messages and {load.PATIENTS:,} patients in {time.perf_counter() - t:.0f} s")
    if db.dialect.name == "postgresql":
        with db.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return db, end


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = args.database_url or f"sqlite:///{args.keep or Path(tempfile.mkdtemp()) / 'admin.db'}"
    db, end = prepare(url, args.messages, args.channels)
    with db.begin() as conn:
        token = add_token(conn, "bench", Role.OPERATOR, "bench")
    served = Served(channels_file(args.channels), db)
    figures = served.server.context.figures
    snapshot = []
    for _ in range(3):
        t = time.perf_counter()
        figures.refresh()
        snapshot.append((time.perf_counter() - t) * 1000)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{served.server.port}"
    out: dict[str, Any] = {"database": db.dialect.name, "messages": args.messages}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        client.get("/api/v1/messages").raise_for_status()  # warm-up
        out["search"] = {
            name: timed(client, args.requests, lambda i, f=f: ("/api/v1/messages", f(i)))
            for name, f in searches(args.messages, args.channels, end).items()
        }
        out["metrics_scrape"] = timed(client, args.requests, lambda i: ("/metrics", {}))
        out["dashboard_api"] = timed(client, args.requests, lambda i: ("/api/v1/channels", {}))
        out["dashboard_page"] = timed(client, args.requests, lambda i: ("/", {}))
    served.stop()
    db.dispose()
    out["snapshot_ms"] = [round(s, 1) for s in snapshot]
    out["targets"] = {
        "search_p99_ms": SEARCH_TARGET_MS,
        "scrape_p99_ms": SCRAPE_TARGET_MS,
        "dashboard_p99_ms": DASHBOARD_TARGET_MS,
        "search_met": all(s["p99_ms"] <= SEARCH_TARGET_MS for s in out["search"].values()),
        "scrape_met": out["metrics_scrape"]["p99_ms"] <= SCRAPE_TARGET_MS,
        "dashboard_met": out["dashboard_api"]["p99_ms"] <= DASHBOARD_TARGET_MS,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url")
    parser.add_argument("--keep", type=Path, help="SQLite file to reuse (or make)")
    result = run(parser.parse_args())
    text = json.dumps(result, indent=2)
    print(text)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (BENCH / "results" / f"{stamp}-admin.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
