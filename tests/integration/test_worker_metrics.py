"""Distributed workers expose their own /metrics (issue 12) when
``engine.admin.worker_metrics_port`` is set; none without it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from engine.channels.loader import parse_channels
from engine.metrics import PIPELINE_LATENCY
from engine.runtime.wiring import worker_metrics
from tests.e2e.engine_process import free_port

CHANNELS = """
engine:
  admin: {{host: 127.0.0.1, port: 8090, worker_metrics_port: {port}}}
channels:
  - name: lab
    source: {{type: mllp, port: 2575}}
    accept: ["ORU^R01"]
    destinations: {{store: {{type: record_store}}}}
"""


def test_a_worker_serves_its_pipeline_histograms_on_its_metrics_port() -> None:
    port = free_port()
    settings = parse_channels(CHANNELS.format(port=port)).engine
    PIPELINE_LATENCY.labels("lab").observe(0.003)
    server = worker_metrics(settings)
    assert server is not None
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        server.server_close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    counts = [
        s.value
        for s in families["aiguillage_pipeline_latency_seconds"].samples
        if s.name.endswith("_count") and s.labels == {"channel": "lab"}
    ]
    assert counts and counts[0] >= 1


def test_without_the_setting_a_worker_serves_no_metrics() -> None:
    text = CHANNELS.replace(", worker_metrics_port: {port}", "").format()
    assert worker_metrics(parse_channels(text).engine) is None
