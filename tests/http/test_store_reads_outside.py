"""Routes that read the user's metrics store hold no database transaction while they wait for
it (http/db.py ``RequestDb.outside``, reports/api.py ``_store_metrics``): a store that hangs
for its whole timeout must not keep a PostgreSQL connection idle in a transaction per request,
or twenty chart views during a store outage would take every connection from the routes that
need one. A proxy in front of a real VictoriaMetrics asks, as each query passes, whether the
database is free (``writer_blocked``)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.support.databases import Database
from tests.support.live import Clients, VictoriaMetrics
from tests.support.promstore import ProbingProxy, remote_write, store_clients, writer_blocked
from tests.support.web import signed_in

ROUTES = {
    "names": "/api/v1/metrics/names?environment=production",
    "series": "/api/v1/metrics/series?name=latency_ms&environment=production",
    "monitoring report": "/api/v1/reports/monitoring?environment=production&period=1h",
}


def _probed(
    db: Database,
    engine: Engine,
    victoria_metrics: VictoriaMetrics,
    fetch: Callable[[Clients], httpx.Response],
) -> tuple[httpx.Response, list[str | None]]:
    """``fetch``'s answer from a Shipboard reading the store through the probing proxy, and
    what the proxy found as each query passed (None: the database was free)."""
    remote_write(victoria_metrics.url, "latency_ms", 12.5)
    victoria_metrics.flush()
    proxy = ProbingProxy(victoria_metrics.url, lambda: writer_blocked(db.url))
    try:
        with store_clients(db.url, engine, proxy.url) as clients:
            answer = fetch(clients)
    finally:
        proxy.stop()
    return answer, proxy.probes


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_route_reading_the_store_holds_no_transaction_while_it_waits(
    db: Database, engine: Engine, victoria_metrics: VictoriaMetrics, route: str
) -> None:
    def fetch(clients: Clients) -> httpx.Response:
        with clients.as_role("viewer") as viewer:
            return viewer.get(ROUTES[route])

    answer, probes = _probed(db, engine, victoria_metrics, fetch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["source"] == "store"
    assert probes, "the store was not asked"
    assert set(probes) == {None}, probes


def test_the_monitoring_page_holds_no_transaction_while_it_waits(
    db: Database, engine: Engine, victoria_metrics: VictoriaMetrics
) -> None:
    def fetch(clients: Clients) -> httpx.Response:
        with signed_in(clients, engine, "viewer") as browser:
            return browser.get("/monitoring?environment=production&metric=latency_ms")

    page, probes = _probed(db, engine, victoria_metrics, fetch)
    assert page.status_code == 200, page.text
    assert "from the metrics store" in page.text
    # The page then reads alerts and deploy markers from the database again: a new transaction.
    assert "latency_ms" in page.text
    assert len(probes) >= 2, probes  # the names, then the chosen series
    assert set(probes) == {None}, probes
