"""The engine's own histograms (served on /metrics by the admin listener) are observed by the
running engine: journal commits, the pipeline per channel, ACK latency per channel."""

from __future__ import annotations

from pathlib import Path

from engine.metrics import REGISTRY
from tests.integration.inprocess import ADT_CHANNEL, ENGINE_HEAD, InProcessEngine

ADT = (
    "MSH|^~\\&|GAM|CHU|DPI|CHU|20240306111154||ADT^A04^ADT_A01|{cid}|P|2.5\r"
    "EVN|A04|20240306111154\rPID|1||{cid}^^^CHU^PI||NOM^JEANNE||19800101|F\r"
)


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_count", labels or None) or 0.0


def test_commits_pipeline_runs_and_answers_are_observed(tmp_path: Path) -> None:
    before = (
        count("aiguillage_journal_commit_seconds"),
        count("aiguillage_pipeline_latency_seconds", channel="adt"),
        count("aiguillage_ack_latency_seconds", channel="adt"),
    )
    engine = InProcessEngine(ENGINE_HEAD + ADT_CHANNEL, url=f"sqlite:///{tmp_path / 'e.db'}")
    try:
        assert engine.send(ADT.format(cid="H1"), ADT.format(cid="H2")) == ["AA", "AA"]
    finally:
        engine.stop()
    assert count("aiguillage_journal_commit_seconds") >= before[0] + 1
    assert count("aiguillage_pipeline_latency_seconds", channel="adt") == before[1] + 2
    assert count("aiguillage_ack_latency_seconds", channel="adt") == before[2] + 2
