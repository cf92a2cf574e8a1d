"""The data pages over HTTP against the live server: environments, monitoring, security,
performance, DORA and audit. Each page renders with and without data, hides write forms from
those who may not write and refuses their posts, and its forms change what the API returns."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from shipboard.alerting import alerts, evaluator
from shipboard.audit import service as audit
from shipboard.db.engine import system_transaction
from tests.support.databases import SYSTEM
from tests.support.factories import SECURITY_FIXTURES, report_deployment
from tests.support.live import Clients
from tests.support.web import browser, csrf_of, is_html_error, signed_in


def post_form(client: httpx.Client, page: str, action: str, **fields: Any) -> httpx.Response:
    """Load ``page`` for its CSRF token, then post ``fields`` to ``action``."""
    token = csrf_of(client.get(page))
    return client.post(action, data={"csrf_token": token, **fields})


def api(clients: Clients, role: str = "admin") -> httpx.Client:
    return clients.as_role(role)


def audit_count(clients: Clients, action: str) -> int:
    with api(clients) as admin:
        items = admin.get("/api/v1/audit", params={"action": action, "limit": 500}).json()
    return len(items["items"])


# --- environments --------------------------------------------------------------------------


def test_environment_pages_show_config_redacted_for_viewers(
    clients: Clients, engine: Engine
) -> None:
    with api(clients) as admin:
        admin.patch(
            "/api/v1/environments/staging",
            json={
                "config": {
                    "resend_api_key": "re_live_123",
                    "freeze_windows": [
                        {"cron": "0 16 * * 5", "duration_minutes": 60, "timezone": "UTC"}
                    ],
                    "pipeline": {"steps": [{"name": "ship it", "stage": "deploy", "run": "true"}]},
                },
                "limits": {"api_rate_limit": 600},
            },
        ).raise_for_status()
        admin.put(
            "/api/v1/environments/staging/secrets/DEPLOY_TOKEN", json={"value": "s3cr3t-value"}
        ).raise_for_status()
    with signed_in(clients, engine, "viewer") as client:
        listing = client.get("/environments")
        assert listing.status_code == 200
        assert all(name in listing.text for name in ("development", "staging", "production"))
        page = client.get("/environments/staging")
        assert page.status_code == 200
        assert "re_live_123" not in page.text
        assert "***" in page.text
        assert "DEPLOY_TOKEN" in page.text
        assert "s3cr3t-value" not in page.text
        assert "0 16 * * 5" in page.text
        assert "ship it" in page.text
        assert "api rate limit" in page.text
        assert 'type="password"' not in page.text
        assert "/features/" not in page.text  # no toggle forms for a viewer
        assert is_html_error(client.get("/environments/nowhere"), 404)
    with signed_in(clients, engine, "admin") as client:
        page = client.get("/environments/staging")
        assert "re_live_123" in page.text  # admins see credentials, as in the API
        assert 'type="password"' in page.text
        assert "s3cr3t-value" not in page.text


def test_environment_empty_states(clients: Clients, engine: Engine) -> None:
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/environments/development")
        assert page.status_code == 200
        assert "No secrets yet" in page.text
        assert "No freeze windows" in page.text
        assert "No pipeline" in page.text


def test_admin_toggles_a_feature_and_viewers_cannot(clients: Clients, engine: Engine) -> None:
    before = audit_count(clients, "environment.feature")
    with signed_in(clients, engine, "viewer") as client:
        refused = post_form(
            client,
            "/environments/staging",
            "/environments/staging/features/deploy_freeze",
            enabled="true",
        )
        assert is_html_error(refused, 403)
    with signed_in(clients, engine, "deployer") as client:
        refused = post_form(
            client,
            "/environments/staging",
            "/environments/staging/features/deploy_freeze",
            enabled="true",
        )
        assert is_html_error(refused, 403)
    with signed_in(clients, engine, "admin") as client:
        no_token = client.post(
            "/environments/staging/features/deploy_freeze", data={"enabled": "true"}
        )
        assert is_html_error(no_token, 403)
        bad_flag = post_form(
            client,
            "/environments/staging",
            "/environments/staging/features/Bad-Flag",
            enabled="true",
        )
        assert is_html_error(bad_flag, 422)
        bad_value = post_form(
            client,
            "/environments/staging",
            "/environments/staging/features/deploy_freeze",
            enabled="maybe",
        )
        assert is_html_error(bad_value, 422)
        assert audit_count(clients, "environment.feature") == before
        page = client.get("/environments/staging")
        assert 'action="/environments/staging/features/deploy_freeze"' in page.text
        done = post_form(
            client,
            "/environments/staging",
            "/environments/staging/features/deploy_freeze",
            enabled="true",
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/environments/staging?done=feature-on"
        assert "Feature turned on." in client.get(done.headers["location"]).text
    with api(clients, "viewer") as viewer:
        features = viewer.get("/api/v1/environments/staging").json()["features"]
    assert features["deploy_freeze"] is True
    assert audit_count(clients, "environment.feature") == before + 1


def test_admin_sets_a_write_only_secret(clients: Clients, engine: Engine) -> None:
    before = audit_count(clients, "secret.create")
    with signed_in(clients, engine, "viewer") as client:
        refused = post_form(
            client,
            "/environments/production",
            "/environments/production/secrets",
            key="API_TOKEN",
            value="v",
        )
        assert is_html_error(refused, 403)
    with signed_in(clients, engine, "admin") as client:
        bad = post_form(
            client,
            "/environments/production",
            "/environments/production/secrets",
            key="not a key",
            value="hunter2-value",
        )
        assert is_html_error(bad, 422)
        assert "hunter2-value" not in bad.text
        empty = post_form(
            client,
            "/environments/production",
            "/environments/production/secrets",
            key="API_TOKEN",
            value="",
        )
        assert is_html_error(empty, 422)
        done = post_form(
            client,
            "/environments/production",
            "/environments/production/secrets",
            key="API_TOKEN",
            value="hunter2-value",
        )
        assert done.status_code == 303
        page = client.get(done.headers["location"])
        assert "API_TOKEN" in page.text
        assert "hunter2-value" not in page.text
    with api(clients, "viewer") as viewer:
        secrets = viewer.get("/api/v1/environments/production/secrets").json()["items"]
    assert [s["key"] for s in secrets] == ["API_TOKEN"]
    assert audit_count(clients, "secret.create") == before + 1


# --- monitoring ----------------------------------------------------------------------------


def finished_deployment(
    clients: Clients, environment: str = "staging", version: str = "1.0.0"
) -> str:
    """A reported deployment taken to success now, as CI would report it."""
    with api(clients, "deployer") as deployer:
        return report_deployment(deployer, environment, version)


def push_metric(
    clients: Clients, name: str, values: list[float], environment: str = "staging"
) -> None:
    now = datetime.now(UTC)
    batch = [
        {
            "name": name,
            "value": value,
            "timestamp": (now - timedelta(minutes=len(values) - i)).isoformat(),
            "environment": environment,
            "source": "tests",
        }
        for i, value in enumerate(values)
    ]
    with api(clients, "service") as service:
        service.post("/api/v1/metrics", json={"metrics": batch}).raise_for_status()


def silences(clients: Clients) -> list[dict[str, Any]]:
    with api(clients, "viewer") as viewer:
        return list(viewer.get("/api/v1/silences").json()["items"])


def test_monitoring_page_with_and_without_data(clients: Clients, engine: Engine) -> None:
    with signed_in(clients, engine, "viewer") as client:
        empty = client.get("/monitoring")
        assert empty.status_code == 200
        assert "No metrics for production yet" in empty.text
        assert "Nothing is firing" in empty.text
        assert "No silences" in empty.text
        assert 'action="/monitoring/silences"' not in empty.text
        assert is_html_error(client.get("/monitoring?range=2y"), 422)
        assert is_html_error(client.get("/monitoring?environment=moon"), 422)
    push_metric(clients, "http_request_duration_seconds", [0.12, 0.2, 0.18, 0.25])
    finished_deployment(clients)
    with api(clients) as admin:
        admin.post(
            "/api/v1/alert-rules",
            json={
                "name": "SlowRequests",
                "kind": "threshold",
                "environment": "staging",
                "metric": "http_request_duration_seconds",
                "window_s": 600,
                "op": ">",
                "value": 0.1,
                "severity": "high",
                "annotations": {"summary": "requests take <long>"},
            },
        ).raise_for_status()
    with system_transaction(engine) as session:
        evaluator.evaluate_rules(session)
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/monitoring", params={"environment": "staging", "range": "1h"})
        assert page.status_code == 200
        firing = page.text[page.text.index("Firing alerts") : page.text.index("Recent")]
        assert "SlowRequests" in firing
        assert "requests take &lt;long&gt;" in firing
        assert "Silence this alert" not in firing  # viewers cannot silence
        svg = page.text[page.text.index("<svg class='chart-svg'") :]
        assert "<polyline" in svg
        assert "class='marker marker-success'" in svg  # the deployment that just finished
        assert ">s</text>" in svg  # seconds, from the metric's name
        assert "1.0.0 success" in svg
        assert 'aria-current="true">1h<' in page.text
        week = client.get("/monitoring", params={"environment": "staging", "range": "7d"})
        assert week.status_code == 200
        # Four points a minute apart fall into one 42-minute bucket: a dot, not a line.
        assert "<g class='series series-0'>" in week.text


def test_alert_page_at_the_path_notifications_link_to(clients: Clients, engine: Engine) -> None:
    push_metric(clients, "queue_depth", [50, 60])
    with api(clients) as admin:
        admin.post(
            "/api/v1/alert-rules",
            json={
                "name": "QueueDeep",
                "kind": "threshold",
                "environment": "staging",
                "metric": "queue_depth",
                "window_s": 600,
                "op": ">",
                "value": 10,
                "severity": "high",
                "annotations": {"summary": "queue <deep>", "runbook_url": "https://run.example"},
            },
        ).raise_for_status()
    with system_transaction(engine) as session:
        evaluator.evaluate_rules(session)
    with api(clients, "viewer") as viewer:
        (alert,) = viewer.get("/api/v1/alerts").json()["items"]
        assert viewer.get(f"/api/v1/alerts/{alert['id']}").json()["rule"] == "QueueDeep"
        assert viewer.get(f"/api/v1/alerts/{uuid.uuid4()}").status_code == 404
    path = alerts.alert_path(uuid.UUID(alert["id"]))
    assert path == f"/alerts/{alert['id']}"
    with browser(clients.server) as anonymous:
        assert anonymous.get(path).status_code == 303  # to the sign-in page
    with signed_in(clients, engine, "viewer") as client:
        page = client.get(path)
        assert page.status_code == 200, page.text
        assert "QueueDeep" in page.text
        assert "queue &lt;deep&gt;" in page.text
        assert "status-firing" in page.text
        assert "https://run.example" in page.text
        assert "Silence this alert" not in page.text
        assert f'href="{path}"' in client.get("/monitoring?environment=staging").text
        assert is_html_error(client.get(f"/alerts/{uuid.uuid4()}"), 404)
        assert is_html_error(client.get("/alerts/not-an-id"), 422)


def test_deployers_create_and_expire_silences(clients: Clients, engine: Engine) -> None:
    with signed_in(clients, engine, "viewer") as client:
        refused = post_form(
            client,
            "/monitoring",
            "/monitoring/silences",
            matchers="environment=staging",
            duration="2h",
            comment="maintenance",
        )
        assert is_html_error(refused, 403)
    assert silences(clients) == []
    with signed_in(clients, engine, "deployer") as client:
        page = client.get("/monitoring?environment=staging")
        assert 'action="/monitoring/silences"' in page.text
        assert "environment=staging</textarea>" in page.text
        prefilled = client.get("/monitoring?environment=staging&silence=alertname%3DSlowRequests")
        assert "alertname=SlowRequests</textarea>" in prefilled.text
        no_token = client.post(
            "/monitoring/silences",
            data={"matchers": "environment=staging", "duration": "2h", "comment": "x"},
        )
        assert is_html_error(no_token, 403)
        for bad in (
            {"matchers": "environment", "duration": "2h", "comment": "x"},
            {"matchers": "environment=staging", "duration": "forever", "comment": "x"},
            {"matchers": "environment=staging", "duration": "200d", "comment": "x"},
            {"matchers": "environment=staging", "duration": "2h", "comment": "  "},
        ):
            assert is_html_error(
                post_form(client, "/monitoring", "/monitoring/silences", **bad), 422
            )
        assert silences(clients) == []
        done = post_form(
            client,
            "/monitoring",
            "/monitoring/silences",
            matchers="environment=staging\nalertname=HighLatency",
            duration="90m",
            comment="database maintenance",
            environment="staging",
            range="1h",
        )
        assert done.status_code == 303
        assert (
            done.headers["location"]
            == "/monitoring?environment=staging&range=1h&done=silence-created"
        )
        created = silences(clients)
        assert len(created) == 1
        assert {(m["name"], m["value"]) for m in created[0]["matchers"]} == {
            ("environment", "staging"),
            ("alertname", "HighLatency"),
        }
        assert created[0]["active"] is True
        assert created[0]["created_by"] == "deployer-user"
        page = client.get(done.headers["location"])
        assert "Silence created" in page.text
        assert "database maintenance" in page.text
        expire = f"/monitoring/silences/{created[0]['id']}/expire"
        assert f'action="{expire}"' in page.text
        assert is_html_error(
            post_form(client, "/monitoring", "/monitoring/silences/nope/expire"), 422
        )
        assert is_html_error(
            post_form(
                client,
                "/monitoring",
                "/monitoring/silences/00000000-0000-0000-0000-000000000000/expire",
            ),
            404,
        )
        assert post_form(client, "/monitoring", expire).status_code == 303
    assert silences(clients)[0]["active"] is False
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/monitoring")
        assert "database maintenance" in page.text
        assert "/expire" not in page.text


# --- security ------------------------------------------------------------------------------


def upload(
    client: httpx.Client, relative: str, environment: str = "production", **form: str
) -> httpx.Response:
    token = csrf_of(client.get("/security"))
    content = (SECURITY_FIXTURES / relative).read_bytes()
    return client.post(
        "/security/import",
        files={"file": (Path(relative).name, content, "application/json")},
        data={"csrf_token": token, "environment": environment, **form},
    )


def findings(clients: Clients, **params: str) -> list[dict[str, Any]]:
    with api(clients, "viewer") as viewer:
        return list(viewer.get("/api/v1/security/findings", params=params).json()["items"])


def test_security_page_empty_and_viewer_cannot_import(clients: Clients, engine: Engine) -> None:
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/security")
        assert page.status_code == 200
        assert "No findings match these filters" in page.text
        assert "No scans yet" in page.text
        assert 'action="/security/import"' not in page.text
        refused = upload(client, "trivy/dd_misconfigurations_and_secrets.json")
        assert is_html_error(refused, 403)
        for bad in ("severity=urgent", "status=closed", "overdue=maybe", "type=dast"):
            assert is_html_error(client.get(f"/security?{bad}"), 422)
        assert is_html_error(client.get("/security/findings/not-a-uuid"), 422)
        missing = client.get("/security/findings/00000000-0000-0000-0000-000000000000")
        assert is_html_error(missing, 404)
    with api(clients, "viewer") as viewer:
        assert viewer.get("/api/v1/security/scans").json()["items"] == []


def test_import_filter_triage_and_history(clients: Clients, engine: Engine) -> None:
    with signed_in(clients, engine, "deployer") as client:
        no_token = client.post(
            "/security/import",
            files={"file": ("r.json", b"{}", "application/json")},
            data={"environment": "production"},
        )
        assert is_html_error(no_token, 403)
        junk = upload(client, "../../conftest.py")
        assert is_html_error(junk, 422)
        assert is_html_error(
            upload(client, "trivy/dd_misconfigurations_and_secrets.json", environment=""), 422
        )
        with api(clients, "viewer") as viewer:
            assert viewer.get("/api/v1/security/scans").json()["items"] == []
        done = upload(client, "trivy/dd_misconfigurations_and_secrets.json")
        assert done.status_code == 303, done.text
        assert done.headers["location"].startswith("/security?environment=production&scan=")
        page = client.get(done.headers["location"])
        assert "Report imported." in page.text
        assert "compliance score" in page.text
        assert "<svg class='chart-svg'" in page.text  # compliance score over time
        critical = client.get(
            "/security", params={"environment": "production", "severity": "critical"}
        )
        rows = re.findall(r'href="/security/findings/([0-9a-f-]{36})"', critical.text)
        api_criticals = findings(
            clients, environment="production", severity="critical", status="open"
        )
        assert sorted(rows) == sorted(f["id"] for f in api_criticals)
        assert len(rows) == 2
        target = rows[0]
        detail = client.get(f"/security/findings/{target}")
        assert detail.status_code == 200
        assert "SLA due" in detail.text
        assert 'action="/security/findings/' in detail.text
        action = f"/security/findings/{target}/triage"
        page_path = f"/security/findings/{target}"
        assert is_html_error(
            client.post(action, data={"status": "false_positive", "reason": "x"}), 403
        )
        for bad in (
            {"status": "false_positive", "reason": "   "},
            {"status": "wontfix", "reason": "because"},
            {"status": "accepted_risk", "reason": "because", "expires": "2001-01-01"},
            {"status": "accepted_risk", "reason": "because", "expires": "soon"},
        ):
            assert is_html_error(post_form(client, page_path, action, **bad), 422)
        assert target in [
            f["id"] for f in findings(clients, environment="production", status="open")
        ]
        triaged = post_form(
            client, page_path, action, status="false_positive", reason="test data, not a real key"
        )
        assert triaged.status_code == 303
        assert "Triage saved" in client.get(triaged.headers["location"]).text
        still_open = client.get(
            "/security", params={"environment": "production", "severity": "critical"}
        )
        assert target not in still_open.text
    open_now = findings(clients, environment="production", status="open")
    assert target not in [f["id"] for f in open_now]
    [row] = [f for f in findings(clients, environment="production") if f["id"] == target]
    assert (row["status"], row["triage_status"]) == ("triaged", "false_positive")
    with signed_in(clients, engine, "viewer") as client:
        detail = client.get(f"/security/findings/{target}")
        assert "test data, not a real key" in detail.text
        assert "/triage" not in detail.text
        refused = post_form(client, page_path, action, status="fixed", reason="no")
        assert is_html_error(refused, 403)


def test_finding_detail_links_its_cwe(clients: Clients, engine: Engine) -> None:
    with signed_in(clients, engine, "deployer") as client:
        assert (
            upload(client, "sarif/codeql-2.5.4__dd_codeQL-output.sarif", "staging").status_code
            == 303
        )
        with_cwe = [f for f in findings(clients, environment="staging") if f["cwe_id"]]
        assert with_cwe
        finding = with_cwe[0]
        page = client.get(f"/security/findings/{finding['id']}")
        number = finding["cwe_id"].split("-")[1]
        assert f"https://cwe.mitre.org/data/definitions/{number}.html" in page.text
        assert f"{finding['cwe_id']} on cwe.mitre.org" in page.text


def test_an_upload_over_the_environment_limit_is_refused(clients: Clients, engine: Engine) -> None:
    with api(clients) as admin:
        admin.patch(
            "/api/v1/environments/development", json={"config": {"max_file_size_mb": 1}}
        ).raise_for_status()
    with signed_in(clients, engine, "deployer") as client:
        token = csrf_of(client.get("/security"))
        big = b"[" + b" " * (1024 * 1024) + b"]"
        refused = client.post(
            "/security/import",
            files={"file": ("big.json", big, "application/json")},
            data={"csrf_token": token, "environment": "development"},
        )
        assert is_html_error(refused, 413)
    with api(clients, "viewer") as viewer:
        assert viewer.get("/api/v1/security/scans").json()["items"] == []


# --- performance ---------------------------------------------------------------------------


def test_performance_page_with_and_without_data(clients: Clients, engine: Engine) -> None:
    with signed_in(clients, engine, "viewer") as client:
        empty = client.get("/performance")
        assert empty.status_code == 200
        assert "No benchmark results for production" in empty.text
        assert "No regressions found" in empty.text
        assert is_html_error(client.get("/performance?period=1y"), 422)
    now = datetime.now(UTC)
    results = [
        {
            "name": "api_latency",
            "environment": "staging",
            "value": value,
            "unit": "ms",
            "benchmark": 100,
            "threshold": 120,
            "timestamp": (now - timedelta(hours=10 - i)).isoformat(),
        }
        for i, value in enumerate([98, 101, 99, 100, 102, 130])
    ]
    with api(clients, "service") as service:
        service.post("/api/v1/performance/metrics", json={"metrics": results}).raise_for_status()
    with api(clients, "viewer") as viewer:
        regressions = viewer.get(
            "/api/v1/performance/regressions", params={"environment": "staging"}
        ).json()["items"]
    assert len(regressions) == 1
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/performance", params={"environment": "staging"})
        assert page.status_code == 200
        svg = page.text[page.text.index("<svg class='chart-svg'") :]
        assert "class='band band-threshold'" in svg
        assert "baseline (median)" in svg
        assert "expected 100" in svg
        assert ">ms</text>" in svg
        assert "regressed" in page.text
        assert "threshold" in page.text
        chosen = client.get("/performance", params={"environment": "staging", "name": "other"})
        assert "No results for <code>other</code>" in chosen.text


# --- DORA ----------------------------------------------------------------------------------


def test_dora_page_with_and_without_deployments(clients: Clients, engine: Engine) -> None:
    with signed_in(clients, engine, "viewer") as client:
        empty = client.get("/dora")
        assert empty.status_code == 200
        assert "No deployment completed in production" in empty.text
        assert "No completed deployments in this period" in empty.text
        assert is_html_error(client.get("/dora?weeks=0"), 422)
        assert is_html_error(client.get("/dora?weeks=many"), 422)
    finished_deployment(clients, "staging", "1.0.0")
    finished_deployment(clients, "staging", "1.0.1")
    with api(clients, "viewer") as viewer:
        report = viewer.get("/api/v1/reports/dora", params={"environment": "staging"}).json()
    assert report["deployment_frequency"]["deployments"] == 2
    with signed_in(clients, engine, "viewer") as client:
        page = client.get("/dora", params={"environment": "staging", "weeks": 4})
        assert page.status_code == 200
        assert "2 deployments reached staging" in page.text
        assert "0 failed or rolled back of 2 completed" in page.text
        assert "<rect x=" in page.text  # the weekly bars
        assert page.text.count('<th scope="row" class="nowrap">') == 4  # one row per calendar week


# --- audit ---------------------------------------------------------------------------------


def test_audit_page_filters_and_pages(clients: Clients, engine: Engine) -> None:
    with system_transaction(engine) as session:
        for i in range(55):
            audit.record(
                session,
                context=SYSTEM.__class__(
                    actor="audit-page-bot", actor_role="admin", source_ip="10.0.0.9"
                ),
                action="test.event",
                target_type="thing",
                target_id=f"thing-{i:02d}",
                details={"n": i, "note": "<b>not bold</b>"},
            )
    with signed_in(clients, engine, "deployer") as client:
        assert is_html_error(client.get("/audit"), 403)
    with signed_in(clients, engine, "admin") as client:
        first = client.get("/audit", params={"actor": "audit-page-bot"})
        assert first.status_code == 200
        assert first.text.count("<code>test.event</code>") == 50
        assert "<b>not bold</b>" not in first.text
        assert "&lt;b&gt;not bold&lt;/b&gt;" in first.text
        older = re.search(r'href="(/audit\?[^"]*cursor=[^"]+)" rel="next"', first.text)
        assert older
        second = client.get(older.group(1).replace("&amp;", "&"))
        assert second.text.count("<code>test.event</code>") == 5
        assert "thing-00" in second.text
        assert 'rel="next"' not in second.text
        one = client.get("/audit", params={"target_id": "thing-07"})
        assert one.text.count("<code>test.event</code>") == 1
        future = client.get("/audit", params={"actor": "audit-page-bot", "since": "2999-01-01"})
        assert "No audit events match" in future.text
        assert is_html_error(client.get("/audit?since=yesterday"), 422)
