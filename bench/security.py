"""Security and limits benchmark: the engine under the attacks of the trust-boundary issue.

Each measure starts a fresh engine (``aiguillage run`` on a temporary channels file made from
channels.yaml: its MLLP and HTTP channels on free ports, a fresh SQLite database, log level
``warning``; directory and AMQP channels off), attacks it from this process and child processes
(one loopback address per child: 127.0.0.10, .11, ...), and reads the engine's RSS and open
descriptors from /proc and its log after it stopped:

1. ``rss``: RSS after 10 rejected 15 MB CDA documents over HTTP (1.5 M elements, no id) and 10
   rejected 8 MB MDM^T02 over MLLP (OBX-5: base64 of 600 k elements and one chain 201 deep).
   Target: end - start <= 100 MB. Stops sending past ``--rss-ceiling-mb`` (a shared machine).
2. ``held``: 1,000 idle and 1,000 trickling (one byte every 0.5 s inside a frame) connections
   held against the MLLP source, then one normal client sends ``--probe-messages`` ORU^R01, each
   after the previous ACK. Target: ACK p99 <= 100 ms. Reports how many held connections the
   engine kept open and how many it refused.
3. ``half_open``: 20,000 HTTP connections that each send ``POST /documents HTTP/1.1\\r\\nHost:
   x\\r\\n`` and wait, then the same MLLP client. Targets: every message answered, the engine's
   descriptors (max sampled) within its baseline plus the configured connection caps.
4. ``fuzz``: 5,000 mutations of tests/samples/hl7v2 (bench/security_payloads.py), each on a
   connection of its own, 8 at a time, from 127.0.0.1, with a junk budget no run reaches:
   every one answered (ACK or NAK) within 30 s, the engine alive, no traceback and no error
   line in its log.
   ``fuzz_budget``: the same with the channel's default junk budget, which cuts the peer off:
   every connection closed without an answer must be a refusal the engine logged
   (``mllp_connection_refused``) or a payload it counted (``junk_suppressed`` rows); none left
   without a word.
5. ``tls``: 16 synchronous connections on the plain MLLP channel and on a TLS one in the same
   engine (trustme certificates made at run time), plain and TLS in alternating order per run;
   handshakes happen before the clock starts. The pool's patients are registered first (as in
   mllp_ingest.py), so that results are filed rather than held.

Source keys the engine's models do not have yet are left out and listed under ``unsupported``.
``python bench/security.py [--runs 3] [--quick]`` (``make bench-security``): JSON on stdout
(medians of the runs), also saved to bench/results/<timestamp>-security.json; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import mllp_ingest as mi  # noqa: E402
import security_clients as sc  # noqa: E402
import security_payloads as sp  # noqa: E402
from common import save_report  # noqa: E402
from generate import generate  # noqa: E402
from security_engine import QUICK, FdSampler, Sizes, engine  # noqa: E402
from security_report import summarize, targets  # noqa: E402

import engine as engine_package  # noqa: E402

log = mi.log
LEGIT_CDA = mi.ROOT / "tests" / "samples" / "cda" / "fr-cisis" / "BIO-CR-BIO_2024.01_TSH_1.xml"


#: A junk budget no run reaches: every payload is parsed and answered.
NO_BUDGET = {
    "max_refused_per_minute": 1_000_000,
    "max_refused_bytes_per_minute": 1 << 40,
}


def rss_after_rejections(sizes: Sizes, tag: str, ceiling_mb: float) -> dict[str, Any]:
    # Without a junk budget: the peer would be cut off after its first refused document, and
    # the measure is what parsing and refusing each of them leaves behind.
    with engine({"junk": NO_BUDGET}, {"junk": NO_BUDGET}) as run:
        eng = run.eng
        time.sleep(1)
        start = eng.rss_kb() / 1024
        http: dict[str, int] = {}
        mllp: dict[str, int] = {}
        aborted = False
        for i in range(sizes.http_docs):
            body = sp.flat_cda(sizes.http_elements, f"{tag} http {i}")
            status = str(sc.post(run.http_port, "/documents", body))
            http[status] = http.get(status, 0) + 1
            if aborted := eng.rss_kb() / 1024 > ceiling_mb:
                break
        after_http = eng.rss_kb() / 1024
        for i in range(sizes.mllp_docs if not aborted else 0):
            cda = sp.deep_cda(sizes.mllp_elements, sizes.depth, f"{tag} mllp {i}")
            answer = sc.probe(run.mllp_port, [sp.mdm_t02(cda, f"BIG-{tag}-{i}")], timeout=120)
            for code, n in answer["codes"].items():
                mllp[code] = mllp.get(code, 0) + n
            mllp["no_answer"] = mllp.get("no_answer", 0) + answer["failures"]
            if aborted := eng.rss_kb() / 1024 > ceiling_mb:
                break
        time.sleep(1)
        end = eng.rss_kb() / 1024
        peak = eng.rss_kb("VmHWM") / 1024
        tree = {"processes": len(run.tree()), "rss_end_mb": run.tree_rss_mb()}
    return {
        "start_mb": start,
        "after_http_mb": after_http,
        "end_mb": end,
        "delta_mb": end - start,
        "peak_mb": peak,
        "engine_process_tree": tree,
        "http_statuses": http,
        "mllp_answers": mllp,
        "stopped_at_ceiling": aborted,
        "config": run.effective,
        "log": run.log,
    }


def probe_summary(result: dict[str, Any], sent: int) -> dict[str, Any]:
    lat = result["latencies_ms"]
    return {
        "sent": sent,
        "answered": len(lat),
        "unanswered": result["failures"],
        "codes": result["codes"],
        "connections_used": result["connections"],
        "ack_p50_ms": mi.quantile(lat, 0.5) if lat else None,
        "ack_p99_ms": mi.quantile(lat, 0.99) if lat else None,
        "ack_max_ms": max(lat) if lat else None,
    }


def held_connections(sizes: Sizes, start: int) -> dict[str, Any]:
    cap = sizes.idle + sizes.trickle + 64
    with engine({"max_connections": cap, "max_connections_per_peer": cap}) as run:
        per = max(1, math.ceil(sizes.idle / 500))
        idle = sc.Holders("idle", run.mllp_port, sizes.idle, per, first_host=10)
        trickle = sc.Holders("trickle", run.mllp_port, sizes.trickle, per, first_host=10 + per)
        time.sleep(2)
        at_start = {"idle": idle.status(), "trickle": trickle.status()}
        fds_at_start = run.fds()
        messages = generate(sizes.probe_messages, seed=start, start=start)
        result = probe_summary(sc.probe(run.mllp_port, messages), len(messages))
        result["held_at_probe_start"] = at_start
        result["held_at_probe_end"] = {"idle": idle.stop(), "trickle": trickle.stop()}
        result["engine_fds_at_probe_start"] = fds_at_start
        result["engine_alive"] = run.eng.proc.poll() is None
    result["config"] = run.effective
    result["log"] = run.log
    return result


def half_open_http(sizes: Sizes, start: int) -> dict[str, Any]:
    with engine() as run, FdSampler(run) as sampler:
        baseline = run.fds()
        holders = sc.Holders(
            "http_half_open",
            run.http_port,
            sizes.half_open,
            sizes.half_open_processes,
            addresses=sizes.half_open_addresses // sizes.half_open_processes,
        )
        at_connects = holders.status()
        connected_at = time.monotonic()
        # The engine accepts a burst of sockets before it admits (or evicts) any: let it settle.
        time.sleep(2)
        held = holders.status()
        fds_held = run.fds()
        messages = generate(sizes.probe_messages, seed=start, start=start)
        result = probe_summary(sc.probe(run.mllp_port, messages), len(messages))
        result["legit_http_post_status"] = sc.post(
            run.http_port, "/documents", LEGIT_CDA.read_bytes(), timeout=10
        )
        result["held_after_connects"] = at_connects
        result["held_2s_later"] = held
        # Not reconnected when closed: this shows the header timeout (10 s when the engine has
        # none) freeing them.
        timeout = run.effective["http"].get("header_timeout_seconds") or 10
        time.sleep(max(0.0, connected_at + timeout + 2 - time.monotonic()))
        result["fds_after_header_timeout"] = run.fds()
        result["held_after_header_timeout"] = holders.stop()
        result["engine_alive"] = run.eng.proc.poll() is None
        caps = run.connection_caps()
        result["engine_fds"] = {
            "baseline": baseline,
            "2s_after_connects": fds_held,
            "max_sampled": sampler.max_fds,
            "nofile_limit": run.nofile_limit(),
        }
        result["configured_caps"] = caps
        http_cap = caps["http.max_connections"]
        result["held_open_within_http_cap"] = None if http_cap is None else held["open"] <= http_cap
        known = [cap for cap in caps.values() if cap is not None]
        result["within_caps"] = (
            None
            if baseline is None or len(known) < len(caps)
            else sampler.max_fds <= baseline + sum(known)
        )
        result["peak_rss_mb"] = run.eng.rss_kb("VmHWM") / 1024 if result["engine_alive"] else None
    result["log"] = run.log
    return result


def fuzz(sizes: Sizes, seed: int, junk: dict[str, Any] | None) -> dict[str, Any]:
    """The mutations from one peer address, with the channel's junk budget (``junk``: None,
    the engine's default) or with ``NO_BUDGET``."""
    payloads = sp.mutated(sizes.mutations, seed)
    with engine({"junk": junk} if junk else None) as run:
        began = time.perf_counter()
        by_mutation, answer_seconds = sc.send_mutations(run.mllp_port, payloads)
        seconds = time.perf_counter() - began
        alive = run.eng.proc.poll() is None
        journal = run.journal_summary() if alive else None
    totals: dict[str, int] = {}
    for outcomes in by_mutation.values():
        for outcome, n in outcomes.items():
            totals[outcome] = totals.get(outcome, 0) + n
    n = len(payloads)
    refusals = run.log["events"].get("warning:mllp_connection_refused", 0)
    counted = refusals + (journal or {}).get("suppressed", {}).get("suppressed_payloads", 0)
    return {
        "messages": n,
        "seconds": seconds,
        "outcomes": totals,
        "answered_pct": 100 * (totals.get("ack", 0) + totals.get("nak", 0)) / n,
        "closed_without_answer_pct": 100 * totals.get("closed", 0) / n,
        "silent_pct": 100 * (totals.get("silent", 0) + totals.get("connect_failed", 0)) / n,
        "seconds_to_outcome_p99": mi.quantile(answer_seconds, 0.99),
        "seconds_to_outcome_max": max(answer_seconds),
        # A connection closed without an answer should be a refusal the engine logged, or a
        # payload it counted in a junk_suppressed row.
        "engine_refusals_logged_or_counted": counted,
        "closed_not_counted": max(0, totals.get("closed", 0) - counted),
        "by_mutation": by_mutation,
        "engine_alive": alive,
        "journal": journal,
        "config": run.effective,
        "log": run.log,
    }


def tls_cost(sizes: Sizes, index: int) -> dict[str, Any]:
    with engine(tls=True) as run:
        if run.tls_port is None:
            return {"skipped": "the MLLP source has no `tls` key in this engine"}
        mi.register_patients(run.eng)  # as in mllp_ingest.py: results are filed, not held
        out: dict[str, Any] = {}
        order = ("plain", "tls") if index % 2 == 0 else ("tls", "plain")
        for k, name in enumerate(order):
            first = 50_000_000 + index * 1_000_000 + k * sizes.tls_messages
            msgs = generate(sizes.tls_messages, seed=first, start=first)
            port = run.mllp_port if name == "plain" else run.tls_port
            load = mi.run_load(port, msgs, 16, tls_ca=run.ca_file if name == "tls" else None)
            out[f"{name}_msgs_per_s"] = load.rate
            out[f"{name}_ack_p50_ms"] = load.latency(0.5)
            out[f"{name}_ack_p99_ms"] = load.latency(0.99)
            out[f"{name}_not_acked"] = load.messages - load.acked + load.naks
        out["order"] = "-".join(order)
    out["tls_vs_plain_rate"] = out["tls_msgs_per_s"] / out["plain_msgs_per_s"]
    out["tls_minus_plain_p99_ms"] = out["tls_ack_p99_ms"] - out["plain_ack_p99_ms"]
    out["log"] = run.log
    return out


MEASURES = ("rss", "held", "half_open", "fuzz", "fuzz_budget", "tls")


def one_run(args: argparse.Namespace, sizes: Sizes, index: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tag = f"{datetime.now(UTC):%H%M%S}-{index}"
    steps = {
        "rss": lambda: rss_after_rejections(sizes, tag, args.rss_ceiling_mb),
        "held": lambda: held_connections(sizes, 10_000_000 * (index + 1)),
        "half_open": lambda: half_open_http(sizes, 10_000_000 * (index + 1) + 5_000_000),
        "fuzz": lambda: fuzz(sizes, 2575 + index, NO_BUDGET),
        "fuzz_budget": lambda: fuzz(sizes, 2575 + index, None),
        "tls": lambda: tls_cost(sizes, index),
    }
    for name in args.only or MEASURES:
        began = time.monotonic()
        try:
            out[name] = steps[name]()
        except Exception as exc:  # one failed measure (an engine that would not start) is
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}  # reported; the others run
        log(f"run {index + 1}: {name} done in {time.monotonic() - began:.0f} s: {brief(out[name])}")
    return out


def brief(result: dict[str, Any]) -> str:
    keys = ("error", "delta_mb", "ack_p99_ms", "unanswered", "answered_pct", "tls_vs_plain_rate")
    return ", ".join(f"{k}={result[k]}" for k in keys if k in result) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, to debug the bench")
    parser.add_argument("--only", nargs="+", choices=MEASURES, help="these measures only")
    parser.add_argument(
        "--rss-ceiling-mb", type=float, default=4000, help="stop sending past this engine RSS"
    )
    parser.add_argument(
        "--size", action="append", default=[], metavar="NAME=N", help="e.g. half_open=3000"
    )
    args = parser.parse_args()
    sizes = replace(
        QUICK if args.quick else Sizes(),
        **{k: int(v) for k, v in (s.split("=") for s in args.size)},
    )
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "benchmark": "security",
        "started_at": stamp,
        "machine": mi.machine(),
        "source": mi.source_state(),
        "note": f"the attacking clients and the engine share {os.cpu_count()} cores",
        "setup": {
            "runs": args.runs,
            "quick": args.quick,
            "sizes": asdict(sizes),
            "engine_tree": str(Path(engine_package.__file__ or "").parent),
        },
    }
    runs = [one_run(args, sizes, i) for i in range(args.runs)]
    metrics, details = summarize(runs)
    report["metrics"] = metrics
    report["details_per_run"] = details
    report["targets"] = targets(metrics, details)
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    report["duration_seconds"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    save_report(text, stamp, "security")
    print(text)


if __name__ == "__main__":
    main()
