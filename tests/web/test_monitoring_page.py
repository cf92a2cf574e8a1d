"""The monitoring page with the user's own store and Alertmanager (issue 23): its chart reads the
metrics store when SHIPBOARD_PROMETHEUS_URL is set and says so, a store that cannot answer
leaves the alerts on the page, and alerts received from Alertmanager show beside Shipboard's own,
by the environment's matchers when it has them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from shipboard.db.engine import system_transaction
from shipboard.monitoring.forwarding import Forwarder
from tests.support.live import Clients, LiveServer, VictoriaMetrics, free_port
from tests.support.users import role_tokens
from tests.support.web import signed_in


def _clients(live: LiveServer, engine: Engine) -> Clients:
    with system_transaction(engine) as session:
        return Clients(server=live, tokens=role_tokens(session))


def _push(clients: Clients, name: str, values: list[float], environment: str) -> None:
    now = datetime.now(UTC)
    batch = [
        {
            "name": name,
            "value": value,
            "timestamp": (now - timedelta(minutes=len(values) - i)).isoformat(),
            "environment": environment,
            "source": "tests",
            "tags": {"pod": "web-1"},
        }
        for i, value in enumerate(values)
    ]
    with clients.as_role("service") as service:
        service.post("/api/v1/metrics", json={"metrics": batch}).raise_for_status()


def _alert(
    fingerprint: str, labels: dict[str, str], *, status: str = "firing", **extra: Any
) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{labels['alertname']} <summary>"},
        "startsAt": (now - timedelta(minutes=10)).isoformat(),
        "endsAt": now.isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
        **extra,
    }


def _deliver(clients: Clients, alerts: list[dict[str, Any]]) -> None:
    body = {"version": "4", "status": "firing", "receiver": "team-pager", "alerts": alerts}
    with clients.as_role("service") as service:
        service.post("/api/v1/integrations/alertmanager", json=body).raise_for_status()


def _section(html: str, heading: str, end: str) -> str:
    start = html.index(heading)
    return html[start : html.index(end, start)]


def test_the_chart_reads_the_metrics_store_and_says_so(
    serve: Callable[..., LiveServer], engine: Engine, victoria_metrics: VictoriaMetrics
) -> None:
    live = serve(
        remote_write_url=f"{victoria_metrics.url}/api/v1/write",
        prometheus_url=victoria_metrics.url,
    )
    clients = _clients(live, engine)
    _push(clients, "http_request_duration_seconds", [0.12, 0.2, 0.18, 0.25, 0.3], "staging")
    forwarder = Forwarder(live.app.state.forwarding)
    assert forwarder.forward_once(engine).sent_points == 5
    forwarder.close()
    victoria_metrics.flush()

    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/monitoring", params={"environment": "staging", "range": "1h"})
        embedded = client.get(
            "/monitoring", params={"environment": "staging", "range": "1h", "source": "embedded"}
        )
    assert page.status_code == 200, page.text
    assert "from the metrics store" in page.text
    assert 'aria-current="true">metrics store<' in page.text
    # The store's names, without the point counts only the database keeps.
    assert '<option value="http_request_duration_seconds" selected>' in page.text
    assert "http_request_duration_seconds</option>" in page.text
    svg = page.text[page.text.index("<svg class='chart-svg'") :]
    assert "<polyline" in svg
    assert "5 points, averaged per bucket, from the metrics store" in page.text

    assert embedded.status_code == 200
    assert "from Shipboard&#39;s database" in embedded.text
    assert "http_request_duration_seconds (5)</option>" in embedded.text
    assert 'aria-current="true">Shipboard&#39;s database<' in embedded.text


def test_a_store_that_cannot_answer_leaves_the_alerts_on_the_page(
    serve: Callable[..., LiveServer], engine: Engine
) -> None:
    live = serve(prometheus_url=f"http://127.0.0.1:{free_port()}", prometheus_password="s3cret")
    clients = _clients(live, engine)
    _deliver(clients, [_alert("f1", {"alertname": "DiskFull", "environment": "production"})])
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/monitoring")
        fallback = client.get("/monitoring", params={"source": "embedded"})
    assert page.status_code == 503
    assert "text/html" in page.headers["content-type"]
    assert "could not be reached" in page.text
    assert "s3cret" not in page.text
    assert "source=embedded" in page.text
    assert "DiskFull" in _section(page.text, "Alertmanager alerts", "</section>")
    assert fallback.status_code == 200
    assert "No metrics for production yet" in fallback.text


def test_alertmanager_alerts_show_beside_shipboards_own_by_environment(
    clients: Clients, engine: Engine
) -> None:
    _deliver(
        clients,
        [
            _alert(
                "a",
                {"alertname": "CheckoutErrors", "environment": "staging", "severity": "high"},
                generatorURL="https://prometheus.example/graph?g0.expr=up",
            ),
            _alert(
                "b",
                {"alertname": "OldOutage", "env": "staging"},
                status="resolved",
                generatorURL="javascript:alert(1)",
            ),
            _alert("c", {"alertname": "ProdOnly", "environment": "production"}),
            _alert("d", {"alertname": "EuCluster", "cluster": "stg-eu", "team": "checkout"}),
        ],
    )
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/monitoring", params={"environment": "staging"})
    assert page.status_code == 200
    external = _section(page.text, "Alertmanager alerts", "</section>")
    firing = external[: external.index("Resolved")]
    assert 'href="https://prometheus.example/graph?g0.expr=up"' in firing
    assert "CheckoutErrors" in firing
    assert "CheckoutErrors &lt;summary&gt;" in firing
    assert "via team-pager" in firing
    assert "OldOutage" in external[external.index("Resolved") :]
    assert "javascript:" not in page.text
    assert "ProdOnly" not in external
    assert "EuCluster" not in external  # no label names staging, and staging has no matchers
    assert "Nothing is firing in staging" in page.text  # Shipboard's own alerts: none

    # With matchers of its own, staging's alerts are the ones they match, whatever the
    # environment labels say.
    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/staging",
            json={
                "config": {
                    "external_alert_matchers": [
                        {"label": "cluster", "op": "=~", "value": "stg-.+"},
                        {"label": "team", "value": "checkout"},
                    ]
                }
            },
        ).raise_for_status()
        listed = admin.get("/api/v1/external-alerts", params={"environment": "staging"}).json()
    assert [a["alertname"] for a in listed["items"]] == ["EuCluster"]
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/monitoring", params={"environment": "staging"})
    external = _section(page.text, "Alertmanager alerts", "</section>")
    assert "EuCluster" in external
    assert "CheckoutErrors" not in external
    assert "Alertmanager reports nothing" not in external


def test_the_page_without_a_store_does_not_offer_one(clients: Clients, engine: Engine) -> None:
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/monitoring")
        refused = client.get("/monitoring", params={"source": "store"})
    assert page.status_code == 200
    assert 'aria-label="Source"' not in page.text
    assert "Alertmanager reports nothing firing in production" in page.text
    assert refused.status_code == 422
    assert "SHIPBOARD_PROMETHEUS_URL" in refused.text
