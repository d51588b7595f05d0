"""Where one message's CPU time goes, per stage: the pipeline, and intake without sockets.

**Pipeline.** The engine's real worker (``engine.runtime.wiring.build_worker``, repo
channels.yaml, first enabled channel: MLLP ``hospital_hl7`` into the record store), the
generator's 2,000 patients registered first by their ADT^A28 (untimed), then each run journals
``--messages`` ORU^R01 (bench/generate.py: 10 OBX, qualified INS, registered patients) as
intake builds them (untimed) and drains them with ``Worker.run_once``. Each stage of every
pipeline's own stage list (``Pipeline.stages``: parse, the channel's steps, route, transform,
identify, deliver) is wrapped with a timer, and so are the claim, the batched record-store
insert (``store.batch.flush``, also when a stage settles the batch), the journal's end states
(``finish``), the commit and the outbox; what is left of ``run_once`` (connection checkout,
logging, metrics, the batch loop) is ``other``. Times are exclusive: a section nested in
another (a flush inside ``identify``) is charged to itself only, so the shares add up to 100%.

**Intake.** The MLLP path of one connection's frames, without sockets, with the real classes:
``FrameDecoder.feed`` (``mllp_decode``), the inbox's check (``prepare_safely`` ->
``MessageRules.prepare``: ``check``), ``Inbox.journal_soon`` through the real
``GroupCommitter`` to a commit sink that appends inline what the writer thread would
(``Journal.append``: ``journal_append``, its ``conn.commit()``: ``journal_commit``), the ACK
(``MessageRules.ack``: ``ack_build``) written by the MLLP source's own ``Answers``
(``frame``: ``mllp_frame_ack``); the event loop and the rest are ``other``. ``--connections``
frames arrive in each event-loop turn, so each group commit holds that many rows.

Clocks: CPU time of the calling thread (``time.thread_time``; everything runs in one thread,
``process_cpu_us_per_msg`` shows nothing hides in another) and wall time (``perf_counter``).
On a shared machine the CPU shares are what to read; wall time also counts the disk's syncs
and, on PostgreSQL, the round trips (the server's own CPU is given as a whole, read from
``/proc``). Medians of ``--runs``; a last run of each side under cProfile gives the top 15
functions by own time (cProfile slows everything: compare its figures with each other only).

SQLite in a temporary file (``durability: full``), or with ``--backend postgresql`` a fresh
schema of ``AIGUILLAGE_BENCH_POSTGRES_URL`` (default the local ``test`` database), dropped
at the end. JSON on stdout, also saved to bench/results/<timestamp>-stage_profile-<backend>.json;
progress on stderr.

``python bench/stage_profile.py [--messages 3000] [--backend sqlite|postgresql] [--runs 3]
[--connections 16]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy import Connection
from sqlalchemy.engine import Engine

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate as gen  # noqa: E402
import journal_growth as jg  # noqa: E402
import mllp_ingest as mi  # noqa: E402
from common import POSTGRES_URL, Unreachable, postgres_schema, save_report  # noqa: E402

from engine import logs  # noqa: E402
from engine.adapters import mllp_answers  # noqa: E402
from engine.adapters.mllp_framing import Frame, FrameDecoder, frame  # noqa: E402
from engine.channels.config import ChannelConfig  # noqa: E402
from engine.channels.loader import load_channels  # noqa: E402
from engine.channels.sources import MllpSourceConfig  # noqa: E402
from engine.database_state import DatabaseState  # noqa: E402
from engine.intake.committer import GroupCommitter  # noqa: E402
from engine.intake.inbox import Inbox, rules_for  # noqa: E402
from engine.intake.offload import prepare_safely  # noqa: E402
from engine.intake.sink import Done, Result  # noqa: E402
from engine.journal.journal import Journal  # noqa: E402
from engine.journal.message_tables import State  # noqa: E402
from engine.journal.records import NewMessage  # noqa: E402
from engine.migrate import upgrade  # noqa: E402
from engine.pipeline import worker as worker_module  # noqa: E402
from engine.pipeline.stages import Stage, Work  # noqa: E402
from engine.pipeline.worker import Worker  # noqa: E402
from engine.runtime.wiring import build_worker  # noqa: E402
from engine.store import batch as store_batch  # noqa: E402

log = mi.log
Clock = Callable[[], float]
#: The section everything not timed otherwise falls into (the root of each timed call).
OTHER = "other"
TOP = 15
#: cProfile's own clock is wall time (a CPU clock costs ~1.4 µs a read here, at every call).
CPROFILE_CLOCK = "wall (cProfile's default): a commit's time there is mostly the disk's sync"
#: MSH-10 ranges of each side, far from the registrations' (R<index>) and from each other.
PIPELINE_CONTROL = 100_000_000
INTAKE_CONTROL = 600_000_000


# -- timing -----------------------------------------------------------------------------------


class Sections:
    """Exclusive (self) time of nested named sections on two clocks, CPU and wall: entering a
    section stops charging the one it is nested in, leaving it charges the outer one again."""

    def __init__(self, cpu: Clock = time.thread_time, wall: Clock = time.perf_counter) -> None:
        self._cpu_clock = cpu
        self._wall_clock = wall
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._stack: list[str] = []
        self._last = (0.0, 0.0)

    def _advance(self) -> None:
        """Charge the time since the last change to the innermost open section."""
        now = (self._cpu_clock(), self._wall_clock())
        if self._stack:
            top = self._stack[-1]
            self.cpu[top] += now[0] - self._last[0]
            self.wall[top] += now[1] - self._last[1]
        self._last = now

    def enter(self, label: str) -> None:
        self._advance()
        self._stack.append(label)
        self.calls[label] += 1

    def leave(self) -> None:
        self._advance()
        self._stack.pop()

    @contextlib.contextmanager
    def section(self, label: str) -> Iterator[None]:
        self.enter(label)
        try:
            yield
        finally:
            self.leave()

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` timed as section ``label`` (also as a class attribute: ``self`` passes on)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.enter(label)
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()

        return timed


def timer_overhead_us(pairs: int = 20_000) -> float:
    """What one enter and leave cost (µs), as a section's own time adds it to its parent's."""
    sections = Sections()
    started = time.thread_time()
    with sections.section("root"):
        for _ in range(pairs):
            sections.enter("x")
            sections.leave()
    return round(1e6 * (time.thread_time() - started) / pairs, 3)


@dataclass
class Run:
    """One timed run: its sections and how many messages it handled."""

    sections: Sections
    messages: int
    process_cpu: float = 0.0
    server_cpu: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def summarise(runs: Sequence[Run], order: Sequence[str]) -> dict[str, Any]:
    """Per section, medians over the runs: CPU and wall µs per message, share of the run's
    CPU, calls per message. Sections in ``order`` first, then any other, ``other`` last."""
    labels = [x for x in order if any(x in r.sections.calls for r in runs)]
    labels += sorted({x for r in runs for x in r.sections.calls} - set(labels) - {OTHER})
    labels.append(OTHER)

    def med(values: Iterator[float], digits: int = 1) -> float:
        return round(statistics.median(values), digits)

    stages: dict[str, dict[str, float]] = {}
    for label in labels:
        stages[label] = {
            "cpu_us_per_msg": med(1e6 * r.sections.cpu[label] / r.messages for r in runs),
            "wall_us_per_msg": med(1e6 * r.sections.wall[label] / r.messages for r in runs),
            "cpu_share": med(
                (r.sections.cpu[label] / (sum(r.sections.cpu.values()) or 1.0) for r in runs), 3
            ),
            "calls_per_msg": med((r.sections.calls[label] / r.messages for r in runs), 3),
        }
    total_cpu = [sum(r.sections.cpu.values()) / r.messages for r in runs]
    total_wall = [sum(r.sections.wall.values()) / r.messages for r in runs]
    return {
        "stages": stages,
        "total": {
            "cpu_us_per_msg": med(1e6 * x for x in total_cpu),
            "wall_us_per_msg": med(1e6 * x for x in total_wall),
            "msg_per_cpu_second": med((1 / x for x in total_cpu), 0),
            "msg_per_wall_second": med((1 / x for x in total_wall), 0),
            "process_cpu_us_per_msg": med(1e6 * r.process_cpu / r.messages for r in runs),
            "server_cpu_us_per_msg": med(1e6 * r.server_cpu / r.messages for r in runs),
        },
    }


def top_functions(profiler: cProfile.Profile, messages: int, top: int = TOP) -> list[Any]:
    """The ``top`` functions by own time, per message (µs) and as a share of the run."""
    stats = pstats.Stats(profiler)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(e[2] for e in entries.values()) or 1.0
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    out = []
    for (path, line, name), (_cc, calls, tottime, cumtime, _callers) in ranked:
        out.append(
            {
                "function": f"{name} ({short_path(path)}:{line})",
                "tottime_us_per_msg": round(1e6 * tottime / messages, 1),
                "tottime_share": round(tottime / total, 3),
                "cumtime_us_per_msg": round(1e6 * cumtime / messages, 1),
                "calls_per_msg": round(calls / messages, 2),
            }
        )
    return out


def short_path(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3", str(ROOT) + "/"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3" else tail
    return path


@contextlib.contextmanager
def cpu_of_process() -> Iterator[list[float]]:
    """This process's CPU over the block (all threads), in the list's one item."""
    out = [0.0]
    started = time.process_time()
    try:
        yield out
    finally:
        out[0] = time.process_time() - started


@contextlib.contextmanager
def timing(sections: Sections, targets: Sequence[tuple[object, str, str]]) -> Iterator[None]:
    """Each ``(owner, attribute, label)``: the callable ``owner.attribute`` timed as section
    ``label`` for the block (a class's method for all its instances)."""
    with contextlib.ExitStack() as stack:
        for owner, attribute, label in targets:
            timed = sections.wrap(label, getattr(owner, attribute))
            stack.enter_context(mock.patch.object(owner, attribute, timed))
        yield


# -- pipeline ---------------------------------------------------------------------------------


class TimedStage:
    """A pipeline stage whose ``run`` is timed as its own section."""

    def __init__(self, inner: Stage, label: str, sections: Sections) -> None:
        self.inner = inner
        self.label = label
        self.sections = sections

    @property
    def name(self) -> str:
        return self.inner.name

    def run(self, work: Work) -> None:
        self.sections.enter(self.label)
        try:
            self.inner.run(work)
        finally:
            self.sections.leave()


def stage_labels(stages: Sequence[Stage]) -> list[str]:
    """Each stage's name; a name two stages share gets the stage's class too."""
    names = Counter(s.name for s in stages)
    return [s.name if names[s.name] == 1 else f"{s.name}:{type(s).__name__}" for s in stages]


def pipeline_order(worker: Worker) -> list[str]:
    labels = ["claim"]
    for pipeline in worker.pipelines.values():
        labels += [x for x in stage_labels(pipeline.stages) if x not in labels]
    return [*labels, "store_flush", "finish", "commit", "outbox"]


@contextlib.contextmanager
def timed_worker(worker: Worker, sections: Sections) -> Iterator[None]:
    """The worker's stages and batch steps timed in ``sections`` for the block."""
    kept = {name: p.stages for name, p in worker.pipelines.items()}
    for pipeline in worker.pipelines.values():
        labels = stage_labels(pipeline.stages)
        pipeline.stages = tuple(
            TimedStage(s, x, sections) for s, x in zip(pipeline.stages, labels, strict=True)
        )
    steps = [
        (worker_module, "claim_pending", "claim"),
        (store_batch, "flush", "store_flush"),  # also when a stage settles the batch
        (worker.journal, "finish_many", "finish"),
        (worker.journal, "finish", "finish"),
        (Connection, "commit", "commit"),
        (worker.outbox, "flush", "outbox"),
    ]
    try:
        with timing(sections, steps):
            yield
    finally:
        for name, stages in kept.items():
            worker.pipelines[name].stages = stages


def drain(worker: Worker, count: int, sections: Sections | None = None) -> int:
    """Run the worker until ``count`` messages are handled (each ``run_once`` a section
    ``other`` when timed); how many batches it took."""
    done = batches = 0
    while done < count:
        if sections is None:
            handled = worker.run_once()
        else:
            with sections.section(OTHER):
                handled = worker.run_once()
        if handled == 0:
            raise RuntimeError(f"the worker stopped after {done} of {count} messages")
        done += handled
        batches += 1
    return batches


def pipeline_bodies(count: int, run: int) -> list[bytes]:
    return gen.generate(count, seed=1000 + run, start=PIPELINE_CONTROL + run * count)


def delivered(db: Engine) -> int:
    return jg.states(db).get(State.DELIVERED.value, 0)


def pipeline_run(
    db: Engine,
    worker: Worker,
    intake: Any,
    clock: jg.CpuClock,
    args: argparse.Namespace,
    run: int,
    profile: bool,
) -> tuple[Run, cProfile.Profile | None]:
    count = jg.append(db, intake, pipeline_bodies(args.messages, run))  # untimed
    before = delivered(db)
    sections = Sections()
    profiler = cProfile.Profile() if profile else None
    redone = worker.redone
    _, server0 = clock.now()
    with cpu_of_process() as cpu:
        if profiler is None:
            with timed_worker(worker, sections):
                batches = drain(worker, count, sections)
        else:
            profiler.enable()
            batches = drain(worker, count)
            profiler.disable()
    _, server1 = clock.now()
    if delivered(db) - before != count or worker.redone != redone:
        raise RuntimeError(f"run {run}: not every message delivered in one pass: {jg.states(db)}")
    extra = {"batches": batches, "messages_per_batch": round(count / batches, 1)}
    return Run(sections, count, cpu[0], server1 - server0, extra), profiler


def profile_pipeline(db: Engine, args: argparse.Namespace) -> dict[str, Any]:
    config = load_channels(ROOT / "channels.yaml")
    channel = next(c for c in config.channels if c.enabled)
    intake = rules_for(channel)
    clock = jg.CpuClock(db)  # before the worker's first connection: its backend is seen
    worker = build_worker(config, db)
    try:
        t0 = time.perf_counter()
        drain(worker, jg.append(db, intake, gen.registrations(gen.POOL_SIZE)))
        log(f"  {gen.POOL_SIZE:,} patients registered in {time.perf_counter() - t0:.1f} s")
        order = pipeline_order(worker)
        runs: list[Run] = []
        for r in range(args.runs):
            run, _ = pipeline_run(db, worker, intake, clock, args, r, False)
            runs.append(run)
            log(f"  pipeline run {r + 1}: {cpu_line(run)}")
        _, profiler = pipeline_run(db, worker, intake, clock, args, args.runs, True)
        assert profiler is not None
    finally:
        worker.close()
    out = summarise(runs, order)
    out["batches_per_run"] = [r.extra["batches"] for r in runs]
    out["messages_per_batch"] = statistics.median(r.extra["messages_per_batch"] for r in runs)
    out["cprofile_top_tottime"] = top_functions(profiler, args.messages, args.top)
    out["cprofile_clock"] = CPROFILE_CLOCK
    return out


def cpu_line(run: Run) -> str:
    total = sum(run.sections.cpu.values())
    return f"{1e6 * total / run.messages:,.0f} µs CPU a message ({run.messages / total:,.0f}/CPU s)"


# -- intake -----------------------------------------------------------------------------------


class InlineSink:
    """The writer thread's part of intake, done inline: each group commit appended to the
    journal on one connection (as ``Writer._append``), its senders told at once."""

    def __init__(self, db: Engine, sections: Sections) -> None:
        self.engine = db
        self.state = DatabaseState(db.url.render_as_string())
        self.journal = Journal(db)
        self.sections = sections
        self.conn = db.connect()
        self.groups: list[int] = []

    def submit(self, rows: Sequence[NewMessage], done: Done, deadline: float | None = None) -> None:
        with self.sections.section("journal_append"):
            results: list[Result] = list(self.journal.append(self.conn, rows))
        self.groups.append(len(rows))
        done(results)

    def close(self) -> None:
        self.conn.close()


class Peer:
    """One MLLP connection's answering end (``mllp_answers.Answering``): keeps the ACKs."""

    def __init__(self, name: str, waiting: Callable[[], None]) -> None:
        self.peer = name
        self.acks: list[bytes] = []
        self._answered = waiting

    def write(self, framed: bytes) -> None:
        self.acks.append(framed)

    def answered(self) -> None:
        self._answered()

    def close(self, reason: str) -> None:
        raise RuntimeError(f"connection closed: {reason}")


async def intake_turns(
    inbox: Inbox, config: MllpSourceConfig, framed: Sequence[bytes], connections: int
) -> list[Peer]:
    """Feed the frames, ``connections`` to an event-loop turn (one each), as the MLLP source
    does; return when every frame is answered."""
    left = len(framed)
    all_answered = asyncio.get_running_loop().create_future()

    def answered() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            all_answered.set_result(None)

    peers = [Peer(f"127.0.0.1:{40000 + i}", answered) for i in range(connections)]
    decoders = [FrameDecoder(config.max_message_bytes) for _ in peers]
    answers = [mllp_answers.Answers(inbox, config, p) for p in peers]
    for start in range(0, len(framed), connections):
        for i, chunk in enumerate(framed[start : start + connections]):
            for item in decoders[i].feed(chunk):
                assert isinstance(item, Frame)
                answers[i].journal(prepare_safely(inbox.rules, item.payload, peers[i].peer))
        await asyncio.sleep(0)  # the turn ends: the group committer flushes
    await all_answered
    return peers


def intake_run(
    db: Engine,
    channel: ChannelConfig,
    clock: jg.CpuClock,
    args: argparse.Namespace,
    run: int,
    profile: bool,
) -> tuple[Run, cProfile.Profile | None]:
    source = channel.source
    assert isinstance(source, MllpSourceConfig)
    start = INTAKE_CONTROL + run * args.messages
    framed = [frame(b) for b in gen.generate(args.messages, seed=2000 + run, start=start)]
    sections = Sections()
    sink = InlineSink(db, sections)
    profiler = cProfile.Profile() if profile else None
    try:
        inbox = Inbox.for_channel(channel, GroupCommitter(sink))
        rules = inbox.rules
        steps = [
            (FrameDecoder, "feed", "mllp_decode"),
            (rules, "prepare", "check"),
            (Connection, "commit", "journal_commit"),
            (rules, "ack", "ack_build"),
            (mllp_answers, "frame", "mllp_frame_ack"),
        ]
        _, server0 = clock.now()
        with cpu_of_process() as cpu:
            if profiler is None:
                with timing(sections, steps), sections.section(OTHER):
                    peers = asyncio.run(intake_turns(inbox, source, framed, args.connections))
            else:
                profiler.enable()
                peers = asyncio.run(intake_turns(inbox, source, framed, args.connections))
                profiler.disable()
        _, server1 = clock.now()
    finally:
        sink.close()
    acks = [a for p in peers for a in p.acks]
    if len(acks) != len(framed) or not all(b"MSA|AA|" in a for a in acks):
        raise RuntimeError(f"intake run {run}: not every message was accepted (AA)")
    extra = {"rows_per_commit": round(statistics.mean(sink.groups), 1)}
    return Run(sections, len(framed), cpu[0], server1 - server0, extra), profiler


def profile_intake(db: Engine, args: argparse.Namespace) -> dict[str, Any]:
    config = load_channels(ROOT / "channels.yaml")
    channel = next(c for c in config.channels if c.enabled)
    order = ["mllp_decode", "check", "journal_append", "journal_commit", "ack_build"]
    order.append("mllp_frame_ack")
    clock = jg.CpuClock(db)
    runs: list[Run] = []
    for r in range(args.runs):
        run, _ = intake_run(db, channel, clock, args, r, False)
        runs.append(run)
        log(f"  intake run {r + 1}: {cpu_line(run)}")
    _, profiler = intake_run(db, channel, clock, args, args.runs, True)
    assert profiler is not None
    out = summarise(runs, order)
    out["rows_per_commit"] = statistics.median(r.extra["rows_per_commit"] for r in runs)
    out["cprofile_top_tottime"] = top_functions(profiler, args.messages, args.top)
    out["cprofile_clock"] = CPROFILE_CLOCK
    return out


# -- main -------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[Engine]:
    if args.backend == "sqlite":
        with jg.sqlite_db() as db:
            yield db
    else:
        with postgres_schema("bench_stages", args.postgres_url) as db:
            yield db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=TOP, help="functions listed under cProfile")
    parser.add_argument("--connections", type=int, default=16, help="frames an event-loop turn")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logs.configure("warning")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "benchmark": "stage_profile",
        "started_at": stamp,
        "machine": mi.machine(),
        "source": mi.source_state(),
        "setup": {
            "messages": args.messages,
            "runs": args.runs,
            "backend": args.backend,
            "connections": args.connections,
            "message": "bench/generate.py ORU^R01 v2.5, 10 OBX, IPP + INS + VALI, 2,000 patients",
            "pipeline": "runtime.wiring.build_worker(repo channels.yaml), Worker.run_once",
            "intake": "FrameDecoder, prepare_safely, Inbox.journal_soon, GroupCommitter, "
            "Journal.append inline, MLLP Answers; no sockets",
            "clocks": "thread CPU (time.thread_time) and wall (perf_counter), exclusive sections",
            "timer_overhead_us_per_section": timer_overhead_us(),
        },
    }
    try:
        with database(args) as db:
            upgrade(db)
            log(f"{args.backend}: pipeline, {args.messages:,} messages a run")
            report["pipeline"] = profile_pipeline(db, args)
            log(f"{args.backend}: intake, {args.messages:,} messages a run")
            report["intake"] = profile_intake(db, args)
    except Unreachable as exc:
        report["skipped"] = str(exc)
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    out = json.dumps(report, indent=2, ensure_ascii=False)
    save_report(out, stamp, f"stage_profile-{args.backend}")
    print(out)


if __name__ == "__main__":
    main()
