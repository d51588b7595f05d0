"""``/metrics``: the journal's figures as Prometheus gauges, each channel's source state, and
the engine's histograms (:mod:`engine.metrics`), in one exposition.

The journal part changes only with its snapshot (a few seconds apart): its text is made once
per snapshot, and a scrape in between only writes the live parts.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine import metrics as engine_metrics
from engine.admin.figures import WAITING, FiguresCache, Snapshot
from engine.admin.state import EngineState
from engine.journal.message_tables import State


def journal_families(snapshot: Snapshot) -> list[Metric]:
    total = GaugeMetricFamily(
        "aiguillage_messages_total",
        "Messages in the journal, by channel and current state",
        labels=["channel", "state"],
    )
    depth = GaugeMetricFamily(
        "aiguillage_queue_depth",
        "Messages waiting: received, retrying, held (unknown patient), review",
        labels=["channel", "state"],
    )
    dead = GaugeMetricFamily(
        "aiguillage_dead_letters", "Dead letters waiting for an operator", labels=["channel"]
    )
    oldest = GaugeMetricFamily(
        "aiguillage_oldest_waiting_seconds",
        "Age of the oldest message waiting in each state",
        labels=["channel", "state"],
    )
    for name, f in sorted(snapshot.channels.items()):
        for state, n in sorted(f.counts.items()):
            total.add_metric([name, state], n)
        for state in WAITING:
            depth.add_metric([name, state], f.counts.get(state, 0))
        dead.add_metric([name], f.counts.get(State.DEAD_LETTERED, 0))
        for state, age in sorted(f.oldest_waiting_seconds(snapshot.taken_at).items()):
            oldest.add_metric([name, state], age)
    return [total, depth, dead, oldest]


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


class _SourceUp(Collector):
    def __init__(self, state: EngineState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "aiguillage_source_up", "1 when the channel's source is bound", labels=["channel"]
        )
        for source in self.state.sources():
            up.add_metric([source.channel], 1.0 if source.bound else 0.0)
        yield up


def _text(*collectors: Collector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    return generate_latest(registry)


class Exposition:
    def __init__(self, figures: FiguresCache, state: EngineState | None) -> None:
        self.figures = figures
        self._up = _SourceUp(state) if state is not None else None
        self._journal: tuple[Snapshot, bytes] | None = None

    def render(self) -> bytes:
        snapshot = self.figures.get()
        if self._journal is None or self._journal[0] is not snapshot:
            self._journal = (snapshot, _text(_Families(journal_families(snapshot))))
        parts = [self._journal[1]]
        if self._up is not None:
            parts.append(_text(self._up))
        parts.append(generate_latest(engine_metrics.REGISTRY))
        return b"".join(parts)
