"""Lists that used to stop at a fixed size page with a cursor, as the API contract says:
GET /api/v1/security/findings (stopped at 500) and GET /api/v1/alerts (stopped at 200); and a
large scan import no longer holds SQLite's write lock while it parses."""

from __future__ import annotations

import copy as copy_module
import html
import json
import re
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from shipboard.alerting.models import Alert
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from tests.support.live import Clients
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.support.problems import assert_problem
from tests.support.web import is_html_error, signed_in

FIXTURES = FIXTURES_ROOT / "security"
# semgrep 0.17.0 on the OWASP benchmark: 1768 results (MANIFEST.md).
MANY = "sarif/semgrep-0.17.0__dd_semgrepowasp-benchmark-sample.sarif"


def _all(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        assert pages < 1000


def test_every_current_finding_is_reachable_page_by_page(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        response = client.post(
            "/api/v1/security/scans/import",
            files={"file": ("r.sarif", (FIXTURES / MANY).read_bytes(), "application/json")},
            data={"environment": "staging"},
        )
        assert response.status_code == 201, response.text
        total = response.json()["findings"]
        assert total > 500
        first = client.get("/api/v1/security/findings").json()
        assert len(first["items"]) == 50  # the contract's default limit
        assert first["next_cursor"]
        items = _all(client, "/api/v1/security/findings", environment="staging", limit=500)
        assert len(items) == total
        assert len({f["fingerprint"] for f in items}) == total
        # Filters that used to apply after the limit apply before it: triage 300, list the rest.
        for finding in items[:300]:
            assert (
                client.patch(
                    f"/api/v1/security/findings/{finding['id']}",
                    json={"status": "false_positive", "reason": "benchmark"},
                ).status_code
                == 204
            )
        still_open = _all(client, "/api/v1/security/findings", status="open", limit=7)
        assert len(still_open) == total - 300
        triaged = _all(client, "/api/v1/security/findings", status="triaged", limit=500)
        assert {f["id"] for f in triaged} == {f["id"] for f in items[:300]}
        assert _all(client, "/api/v1/security/findings", overdue="true") == []
        assert len(_all(client, "/api/v1/security/findings", overdue="false", limit=500)) == total
        for bad in ({"limit": 501}, {"limit": 0}, {"cursor": "not-a-cursor"}):
            assert_problem(client.get("/api/v1/security/findings", params=bad), 422)


def test_every_alert_is_reachable_page_by_page(clients: Clients, engine: Engine) -> None:
    with clients.as_role("admin") as admin:
        response = admin.post(
            "/api/v1/alert-rules",
            json={
                "name": "many",
                "kind": "threshold",
                "environment": "staging",
                "metric": "errors",
                "agg": "avg",
                "window_s": 60,
                "op": ">",
                "value": 10,
                "severity": "high",
            },
        )
        assert response.status_code == 201, response.text
        rule_id = uuid.UUID(response.json()["id"])
    now = utcnow()
    with system_transaction(engine) as session:
        for i in range(260):
            session.add(
                Alert(
                    rule_id=rule_id,
                    fingerprint=f"fp-{i:03d}",
                    state="firing" if i % 2 else "resolved",
                    labels={"instance": f"host-{i}"},
                    annotations={},
                    # Ties on purpose: ten alerts share each moment.
                    updated_at=now - timedelta(seconds=i // 10),
                )
            )
    with clients.as_role("viewer") as viewer:
        first = viewer.get("/api/v1/alerts").json()
        assert len(first["items"]) == 50
        alerts = _all(viewer, "/api/v1/alerts", limit=33)
        assert len(alerts) == len({a["id"] for a in alerts}) == 260
        # Newest change first.
        assert {a["fingerprint"] for a in alerts[:10]} == {f"fp-{i:03d}" for i in range(10)}
        firing = _all(viewer, "/api/v1/alerts", state="firing", limit=500)
        assert len(firing) == 130
        assert {a["state"] for a in firing} == {"firing"}
        for bad in ({"limit": 501}, {"cursor": "x"}):
            assert_problem(viewer.get("/api/v1/alerts", params=bad), 422)


# --- issue 18 item 12: a large import does not hold SQLite's write lock while it parses ---


def _big_sarif(results: int) -> bytes:
    """The real semgrep OWASP sample, its results repeated under other directories."""
    document = json.loads((FIXTURES / MANY).read_bytes())
    run = document["runs"][0]
    base = run["results"]
    out = []
    for copy in range(results // len(base) + 1):
        for result in base:
            clone = copy_module.deepcopy(result)
            for location in clone.get("locations") or []:
                artifact = location["physicalLocation"]["artifactLocation"]
                artifact["uri"] = f"copy{copy}/{artifact['uri']}"
            out.append(clone)
    run["results"] = out[:results]
    return json.dumps(document).encode()


def test_other_writers_keep_flowing_while_a_large_report_is_parsed(
    clients: Clients, backend: str
) -> None:
    if backend != "sqlite":
        return  # PostgreSQL has no database-wide write lock
    data = _big_sarif(20_000)
    done: dict[str, float] = {}

    def upload() -> None:
        with clients.as_role("deployer") as client:
            started = time.perf_counter()
            response = client.post(
                "/api/v1/security/scans/import",
                files={"file": ("big.sarif", data, "application/json")},
                data={"environment": "staging"},
                timeout=600,
            )
            done["import_s"] = time.perf_counter() - started
            done["status"] = response.status_code

    latencies: list[float] = []
    worker = threading.Thread(target=upload)
    with clients.as_role("admin") as admin:
        worker.start()
        time.sleep(0.2)
        while worker.is_alive():
            started = time.perf_counter()
            # A write: it needs the write lock, as every POST does.
            response = admin.post(
                "/api/v1/metrics",
                json={
                    "metrics": [
                        {"name": "probe", "value": 1, "environment": "staging", "source": "test"}
                    ]
                },
            )
            assert response.status_code in (200, 201, 202), response.text
            latencies.append(time.perf_counter() - started)
            time.sleep(0.05)
    worker.join()
    assert done["status"] == 201
    # Before, the import held the lock from authentication to commit: another writer waited
    # for nearly all of it. Parsing (more than half of the import) now holds no lock.
    print(f"import {done['import_s']:.2f} s, longest other write {max(latencies):.2f} s")
    assert len(latencies) >= 3
    assert max(latencies) < 0.75 * done["import_s"]


def test_the_security_page_pages_through_every_finding(clients: Clients, engine: Engine) -> None:
    with clients.as_role("deployer") as client:
        response = client.post(
            "/api/v1/security/scans/import",
            files={"file": ("r.sarif", (FIXTURES / MANY).read_bytes(), "application/json")},
            data={"environment": "staging"},
        )
        assert response.status_code == 201, response.text
        total = response.json()["findings"]
    with signed_in(clients, engine, "viewer") as browser_client:
        url: str | None = "/security?environment=staging&status=any"
        seen: set[str] = set()
        while url:
            page = browser_client.get(url)
            assert page.status_code == 200, page.text
            seen |= set(re.findall(r'href="/security/findings/([0-9a-f-]{36})"', page.text))
            more = re.search(r'<a href="(/security\?[^"]*cursor=[^"]+)"[^>]*>Next', page.text)
            url = html.unescape(more.group(1)) if more else None
        assert len(seen) == total > 500
        assert is_html_error(browser_client.get("/security?cursor=nonsense"), 422)
