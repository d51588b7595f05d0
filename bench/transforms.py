"""Transforms benchmark: what a channel's transform and python steps cost per message.

On bench ORU^R01 messages (bench/generate.py: 1.6 KB, 10 OBX) rewritten with the local lab
codes of config/maps/lab_codes.csv, it times with ``time.perf_counter_ns``, after a warm-up:

- ``transform_10_ops``: one transform step of 10 operations, including a code-table map over
  the 10 OBX (OBX-3 code, text and system) and a second operation on every OBX, as the
  pipeline runs it: the lazily read message in, the edited copy written out and read again as
  a new message (what destinations receive);
- ``python_noop``: a python step whose function does nothing (the message API wrapper, the
  watchdog's bookkeeping, the call);
- ``transform_10_ops_before``: the same step the way it ran before the fast path (the
  reference kept for the property tests, tests/transform_reference/: the plain editable
  message, ``strptime``, the output read again), in the same run: ``speedup`` is its median
  over the fast path's, a ratio that a shared, noisy machine disturbs less than the times;
- ``baseline_read``: reading the message (``Message(text)``), for scale (``per_read``: each
  scenario's median in reads of the message).

Targets (issue 14): transform ≤ 50 µs, no-op python step ≤ 20 µs per message. Prints JSON.
Run: ``.venv/bin/python bench/transforms.py [--messages 2000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from engine.hl7v2.reader import Message

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from generate import generate  # noqa: E402

from engine.channels.loader import parse_channels  # noqa: E402
from engine.pipeline.channel_steps import ChannelSteps  # noqa: E402
from engine.transforms.user.code_tables import load_table  # noqa: E402
from engine.transforms.user.steps import TransformStep  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.transform_reference import ops as reference  # noqa: E402

TABLE = REPO / "config" / "maps" / "lab_codes.csv"
OPS = f"""\
- {{op: set, field: MSH-5, value: DMP}}
- {{op: default, field: MSH-4, value: LABO-CENTRAL}}
- {{op: map, field: "OBX[*]-3", table: {TABLE}, unmapped: dead_letter}}
- {{op: map, field: OBR-4, table: {TABLE}, unmapped: keep}}
- {{op: delete_segments, segment: "Z*"}}
- {{op: case, field: "PID-5[*].1", to: upper}}
- {{op: date, field: MSH-7, from: ["%Y%m%d%H%M%S%z"], to: "%Y%m%d%H%M%S%z"}}
- {{op: replace, field: "OBX[*]-6.1", pattern: "^g/dl$", with: g/dL}}
- {{op: copy, from: PV1-19, to: PID-18}}
- {{op: set, field: MSH-6, value: DMP-RECEIVER, when: {{message_types: [ORU^R01]}}}}
"""


def local_code_messages(count: int) -> list[Message]:
    """Bench ORUs with the lab's local codes instead of LOINC."""
    local = {t.code: code for code, t in load_table(TABLE).entries.items()}
    out = []
    for raw in generate(count):
        text = raw.decode()
        for loinc, code in local.items():
            text = text.replace(f"|{loinc}^", f"|{code}^")
        out.append(Message(text))
    return out


def channel_steps(steps: list[dict[str, object]], plugins: Path) -> ChannelSteps:
    channel = {
        "name": "bench",
        "source": {"type": "mllp", "port": 12600},
        "accept": ["ORU^R01"],
        "steps": steps,
        "destinations": {"out": {"type": "file", "directory": "/tmp/never-written"}},
    }
    text = yaml.safe_dump({"engine": {"plugins_dir": str(plugins)}, "channels": [channel]})
    return ChannelSteps(parse_channels(text).channels[0])


def per_message_us(
    fn: Callable[[Message], object], msgs: list[Message], rounds: int
) -> dict[str, float]:
    for msg in msgs[:200]:
        fn(msg)  # warm-up
    medians = []
    for _ in range(rounds):
        times = []
        for msg in msgs:
            start = time.perf_counter_ns()
            fn(msg)
            times.append(time.perf_counter_ns() - start)
        medians.append(statistics.median(times) / 1000)
    return {
        "median_us": round(statistics.median(medians), 2),
        "best_round_us": round(min(medians), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    msgs = local_code_messages(args.messages)
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp)
        (plugins / "noop.py").write_text("def nothing(msg):\n    pass\n", encoding="utf-8")
        transform = channel_steps([{"type": "transform", "ops": yaml.safe_load(OPS)}], plugins)
        python = channel_steps([{"type": "python", "function": "noop:nothing"}], plugins)
        sample = transform.run(msgs[0]).forms["out"]
        assert isinstance(sample, Message) and sample.get("OBX-3.3") == "LN"
        tx_step = transform.stages[0].apply
        py_step = python.stages[0].apply
        assert callable(tx_step) and callable(py_step)
        before = reference.build(
            TransformStep.model_validate({"type": "transform", "ops": yaml.safe_load(OPS)})
        )
        assert before(msgs[0]).text == sample.text
        fast = per_message_us(tx_step, msgs, args.rounds)
        slow = per_message_us(before, msgs, args.rounds)
        python_noop = per_message_us(py_step, msgs, args.rounds)
        read = per_message_us(lambda m: Message(m.text), msgs, args.rounds)
        report: dict[str, object] = {
            "messages": args.messages,
            "rounds": args.rounds,
            "message_bytes": len(msgs[0].text.encode()),
            "transform_10_ops": fast | {"target_us": 50},
            "transform_10_ops_before": slow,
            "speedup": round(slow["median_us"] / fast["median_us"], 2),
            "python_noop": python_noop | {"target_us": 20},
            "baseline_read": read,
            "per_read": {
                name: round(r["median_us"] / read["median_us"], 2)
                for name, r in (("transform_10_ops", fast), ("before", slow), ("noop", python_noop))
            },
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
