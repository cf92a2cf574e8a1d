"""Shipboard's own telemetry: the Prometheus registry of one app and the instruments the
request path updates, rendered in Prometheus' text format at ``GET /metrics``.

Counters and histograms are updated as requests run; gauges of the instance's state (queue,
leases, notifications, pool, database) come from collectors the app adds
(:mod:`shipboard.ops.instance_metrics`), read when Prometheus scrapes, so nothing goes stale
between scrapes and nothing is computed when nobody looks. Each app has its own registry:
several apps in one process (the tests) must not share counters.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector

INGEST_KINDS = ("metrics", "otlp", "performance")
# Request latencies of an API: most answers take milliseconds, reports and imports seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class IngestNote:
    """What an ingest route reports about the points it was sent; counted when the response
    status is known (a batch whose transaction fails to commit is rejected, not accepted)."""

    kind: str
    points: int
    rejected: int = 0


def note_ingest(state: Any, kind: str, *, points: int, rejected: int = 0) -> None:
    """Called by an ingest route once it knows how many points it was sent."""
    state.ingest = IngestNote(kind=kind, points=points, rejected=rejected)


class Telemetry:
    """The registry of one app and the metrics the request path updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "shipboard_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shipboard_http_request_duration_seconds",
            "Time until the response starts, by route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingest = Counter(
            "shipboard_ingest_points",
            "Points sent to the ingest routes, accepted or rejected",
            ["kind", "result"],
            registry=self.registry,
        )
        for kind in INGEST_KINDS:
            for result in ("accepted", "rejected"):
                self.ingest.labels(kind, result)

    def add_collector(self, collector: Collector) -> None:
        """Add gauges read at scrape time (the instance's state, which the domains above know)."""
        self.registry.register(collector)

    def observe_request(
        self,
        method: str,
        route: str,
        status: int,
        seconds: float,
        state: MutableMapping[str, Any],
    ) -> None:
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.latency.labels(method, route, code).observe(seconds)
        note = state.get("ingest")
        if isinstance(note, IngestNote):
            ok = status < 400
            accepted = note.points - note.rejected if ok else 0
            self.ingest.labels(note.kind, "accepted").inc(accepted)
            self.ingest.labels(note.kind, "rejected").inc(note.points - accepted)

    def render(self) -> bytes:
        return generate_latest(self.registry)
