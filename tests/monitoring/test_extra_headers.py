"""Extra headers for the user's store (SHIPBOARD_PROMETHEUS_HEADERS,
SHIPBOARD_REMOTE_WRITE_HEADERS; issue 23): a recording proxy in front of a real VictoriaMetrics,
as a tenant gateway in front of Mimir or Thanos would be, sees them on every read and every
forwarded write, each setting on its own traffic only, and the points still arrive."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from shipboard.core.time import utcnow
from shipboard.monitoring.forwarding import Forwarder
from tests.support.live import LiveServer, RecordingProxy, VictoriaMetrics


@pytest.fixture
def proxy(victoria_metrics: VictoriaMetrics) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(victoria_metrics.url)
    yield recording
    recording.close()


def test_reads_and_forwarded_writes_carry_their_own_extra_headers(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    victoria_metrics: VictoriaMetrics,
    proxy: RecordingProxy,
) -> None:
    live = serve(
        prometheus_url=proxy.url,
        prometheus_headers="X-Scope-OrgID=team-reads, X-Api-Key=k=v+1",
        remote_write_url=f"{proxy.url}/api/v1/write",
        # JSON, for a value with a comma in it.
        remote_write_headers='{"THANOS-TENANT": "team-a", "X-Scope-OrgID": "team-a,b"}',
    )
    start = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=10)
    points: list[dict[str, Any]] = [
        {
            "name": "tenant.latency",
            "value": 10 + i,
            "environment": "production",
            "source": "rest",
            "timestamp": (start + timedelta(minutes=i)).isoformat(),
        }
        for i in range(5)
    ]
    collector = {"Authorization": f"Bearer {make_user('collector', 'service')}"}
    answer = httpx.post(
        f"{live.base_url}/api/v1/metrics", json={"metrics": points}, headers=collector, timeout=30
    )
    assert answer.json() == {"accepted": 5}
    forwarder = Forwarder(live.app.state.forwarding)
    sent = forwarder.forward_once(engine)
    forwarder.close()
    assert (sent.sent_points, sent.errors) == (5, [])
    (write,) = proxy.seen("/api/v1/write")
    assert write["THANOS-TENANT"] == "team-a"
    assert write["X-Scope-OrgID"] == "team-a,b"
    assert "X-Api-Key" not in write  # the read setting stays on reads
    assert write["Content-Encoding"] == "snappy"
    victoria_metrics.flush()

    reader = {"Authorization": f"Bearer {make_user('reader', 'viewer')}"}
    series = httpx.get(
        f"{live.base_url}/api/v1/metrics/series",
        params={
            "name": "tenant.latency",
            "environment": "production",
            "since": start.isoformat(),
            "until": (start + timedelta(minutes=5)).isoformat(),
            "step": 60,
            "agg": "max",
            "source": "store",
        },
        headers=reader,
        timeout=30,
    )
    assert series.status_code == 200, series.text
    assert series.json()["source"] == "store"
    assert [v for _, v in series.json()["points"]] == [10, 11, 12, 13, 14]
    store = live.settings.metrics_store()
    assert store is not None
    try:
        (sample,) = store.query(
            'max(tenant_latency{environment="production"})', at=start + timedelta(minutes=4)
        )
    finally:
        store.close()
    assert sample.value == 14
    reads = proxy.seen("/api/v1/query_range") + proxy.seen("/api/v1/query")
    assert len(reads) >= 2
    for headers in reads:
        assert headers["X-Scope-OrgID"] == "team-reads"
        assert headers["X-Api-Key"] == "k=v+1"
        assert "THANOS-TENANT" not in headers
