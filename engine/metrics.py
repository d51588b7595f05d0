"""The engine's own Prometheus histograms, in a registry of their own.

Sources, the group committer and the pipeline observe them; the admin listener serves them with
the journal's figures (:mod:`engine.admin.metrics`). This module imports nothing of the engine,
so that any hot-path module can import it.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

# No ``*_created`` series: a line per labelled series that dashboards do not use, in a scrape
# that must stay fast with dozens of channels.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

# Few buckets per series: 50 channels times two histograms is already ~1,500 lines to write.
_ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_PIPELINE_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)

ACK_LATENCY = Histogram(
    "aiguillage_ack_latency_seconds",
    "From a complete message read to its ACK (or HTTP answer) written, per channel",
    ["channel"],
    buckets=_ACK_BUCKETS,
    registry=REGISTRY,
)
PIPELINE_LATENCY = Histogram(
    "aiguillage_pipeline_latency_seconds",
    "One message's run through the pipeline's stages in a worker transaction, per channel",
    ["channel"],
    buckets=_PIPELINE_BUCKETS,
    registry=REGISTRY,
)
JOURNAL_COMMIT_LATENCY = Histogram(
    "aiguillage_journal_commit_seconds",
    "One group commit of received messages to the journal",
    buckets=_COMMIT_BUCKETS,
    registry=REGISTRY,
)


def serve(host: str, port: int) -> WSGIServer:
    """Serve these histograms on ``http://host:port/metrics`` from a thread (a distributed
    worker has no admin listener); ``shutdown()`` the server to stop it."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server
