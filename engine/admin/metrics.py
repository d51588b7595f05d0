"""``/metrics``: the journal's figures as Prometheus gauges, with the engine's histograms
(:mod:`engine.metrics`) in the same exposition."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine import metrics as engine_metrics
from engine.admin.figures import WAITING, FiguresCache
from engine.admin.state import EngineState
from engine.journal.models import State


class JournalCollector(Collector):
    def __init__(self, figures: FiguresCache, state: EngineState | None) -> None:
        self.figures = figures
        self.state = state

    def collect(self) -> Iterator[Metric]:
        snapshot = self.figures.get()
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
        yield from (total, depth, dead, oldest)
        if self.state is not None:
            up = GaugeMetricFamily(
                "aiguillage_source_up", "1 when the channel's source is bound", labels=["channel"]
            )
            for source in self.state.sources():
                up.add_metric([source.channel], 1.0 if source.bound else 0.0)
            yield up


class _EngineHistograms(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from engine_metrics.REGISTRY.collect()


def registry(figures: FiguresCache, state: EngineState | None) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(JournalCollector(figures, state))
    reg.register(_EngineHistograms())
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
