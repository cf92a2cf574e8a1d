"""Alerts that already exist (issue 23 §3): a real Alertmanager delivers its webhook (v4) to
Shipboard with a service token; the alert shows in /api/v1/external-alerts, and one firing in an
environment during a deployment's watch fails it and rolls it back, naming the alert."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.alerting import external
from shipboard.alerting.models import ExternalAlert
from shipboard.alerting.schemas import AlertmanagerWebhook
from shipboard.db.engine import transaction
from shipboard.environments.config_sections import ExternalAlertMatcher
from tests.support.live import Alertmanager, Clients, wait_for
from tests.support.problems import assert_problem

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def _webhook_config(url: str, token: str) -> str:
    """Alertmanager whose only receiver is Shipboard's webhook, with a bearer token."""
    return f"""
route:
  receiver: shipboard
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: shipboard
    webhook_configs:
      - url: {url}
        send_resolved: true
        http_config:
          authorization:
            credentials: {token}
"""


def _fire(manager: Alertmanager, labels: dict[str, str], *, summary: str) -> None:
    now = datetime.now(UTC)
    answer = httpx.post(
        f"{manager.url}/api/v2/alerts",
        json=[
            {
                "labels": labels,
                "annotations": {"summary": summary},
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(minutes=5)).isoformat(),
                "generatorURL": "http://prometheus.example/graph?g0.expr=up",
            }
        ],
        timeout=5,
    )
    answer.raise_for_status()


@pytest.fixture
def alertmanager_to(clients: Clients) -> Iterator[Any]:
    started: list[Alertmanager] = []

    def start() -> Alertmanager:
        manager = Alertmanager(
            _webhook_config(
                f"{clients.server.base_url}/api/v1/integrations/alertmanager",
                clients.tokens["service"],
            )
        )
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.stop()


WATCH = {
    "window_s": 30,
    "interval_s": 0.3,
    "failure_limit": 3,
    "checks": [
        {
            "name": "error rate",
            "kind": "threshold",
            "metric": "nobody_sends_this",
            "aggregate": "avg",
            "op": "<",
            "value": 0.05,
        },
    ],
}


def test_an_alertmanager_alert_firing_during_the_watch_rolls_the_release_back(
    clients: Clients, worker: Any, alertmanager_to: Any
) -> None:
    from tests.support.factories import pipeline_steps, set_pipeline, start_deployment, wait_final

    with clients.as_role("admin") as admin:
        set_pipeline(
            admin, "staging", pipeline_steps(("ship", "deploy", "true")), auto_rollback=True
        )
        good = start_deployment(admin, version="1.0.0")
        assert wait_final(admin, good)["status"] == "success"
        set_pipeline(
            admin, "staging", {**pipeline_steps(("ship", "deploy", "true")), "watch": WATCH}
        )
        bad = start_deployment(admin, version="2.0.0")
        assert wait_final(admin, bad)["status"] == "success"

        manager = alertmanager_to()
        _fire(
            manager,
            {"alertname": "CheckoutErrors", "environment": "staging", "severity": "page"},
            summary="checkout 5xx above 5 %",
        )

        def rolled_back() -> dict[str, Any] | None:
            detail = admin.get(f"/api/v1/deployments/{bad}").json()
            return detail if detail["status"] == "rolled_back" else None

        detail = wait_for(rolled_back, timeout=30, interval=0.2)
        received = admin.get("/api/v1/external-alerts", params={"environment": "staging"}).json()

    assert detail["watch_state"] == "failed"
    (failure,) = [a for a in detail["analysis"] if a.get("check") == "external alerts"]
    assert failure["result"] == "Failed"
    assert "CheckoutErrors" in failure["reason"]
    assert failure["alerts"][0]["labels"]["severity"] == "page"
    (alert,) = received["items"]
    assert alert["alertname"] == "CheckoutErrors"
    assert alert["status"] == "firing"
    assert alert["annotations"] == {"summary": "checkout 5xx above 5 %"}
    assert alert["receiver"] == "shipboard"


def test_the_webhook_needs_a_service_token_and_alertmanagers_shape(clients: Clients) -> None:
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "x",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "A"},
                "startsAt": "2026-12-03T10:00:00.123456789Z",
                "fingerprint": "abc",
            }
        ],
    }
    with clients.as_role(None) as anonymous:
        assert_problem(anonymous.post("/api/v1/integrations/alertmanager", json=body), 401)
    with clients.as_role("viewer") as viewer:
        assert_problem(viewer.post("/api/v1/integrations/alertmanager", json=body), 403)
    with clients.as_role("service") as service:
        refused = service.post("/api/v1/integrations/alertmanager", json={**body, "version": "3"})
        assert_problem(refused, 422)
        naive = {**body["alerts"][0], "startsAt": "2026-12-03T10:00:00"}  # no zone: refused
        refused = service.post(
            "/api/v1/integrations/alertmanager", json={**body, "alerts": [naive]}
        )
        assert "startsAt" in str(assert_problem(refused, 422))
        ok = service.post("/api/v1/integrations/alertmanager", json=body)
        assert ok.json() == {"received": 1}


def test_alerts_belong_to_the_environment_their_labels_name_and_only_new_ones_count(
    engine: Engine,
) -> None:
    start = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    def deliver(status: str, fingerprint: str, labels: dict[str, str], at: datetime) -> None:
        webhook = AlertmanagerWebhook.model_validate(
            {
                "version": "4",
                "status": status,
                "alerts": [
                    {
                        "status": status,
                        "labels": labels,
                        "startsAt": at.isoformat(),
                        "endsAt": "0001-01-01T00:00:00Z",
                        "fingerprint": fingerprint,
                    }
                ],
            }
        )
        with transaction(engine) as session:
            external.receive(
                session,
                webhook=webhook,
                known_environments={"staging", "production"},
                now=at,
            )

    deliver("firing", "old", {"alertname": "Old", "env": "production"}, start)
    deliver(
        "firing",
        "new",
        {"alertname": "New", "environment": "production"},
        start + timedelta(minutes=5),
    )
    deliver(
        "firing",
        "other",
        {"alertname": "Elsewhere", "environment": "qa"},
        start + timedelta(minutes=5),
    )
    with transaction(engine) as session:
        firing = external.firing_since(
            session, environment="production", since=start + timedelta(minutes=1)
        )
        assert [a.alertname for a in firing] == ["New"]
        everything = external.list_external(session, environment=None, status=None).items
        assert {a.alertname: a.environment for a in everything} == {
            "Old": "production",
            "New": "production",
            "Elsewhere": None,  # a label naming no known environment
        }
    deliver(
        "resolved",
        "new",
        {"alertname": "New", "environment": "production"},
        start + timedelta(minutes=5),
    )
    with transaction(engine) as session:
        still = external.firing_since(session, environment="production", since=start)
        assert [a.alertname for a in still] == ["Old"]  # "New" resolved


def _deliver_now(clients: Clients, fingerprint: str, labels: dict[str, str]) -> None:
    """One firing alert, started now, as Alertmanager's webhook delivers it."""
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "shipboard",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "startsAt": datetime.now(UTC).isoformat(),
                "fingerprint": fingerprint,
            }
        ],
    }
    with clients.as_role("service") as service:
        service.post("/api/v1/integrations/alertmanager", json=body).raise_for_status()


def test_an_environments_own_matchers_decide_which_alerts_fail_its_watch(
    clients: Clients, worker: Any
) -> None:
    from tests.support.factories import pipeline_steps, set_pipeline, start_deployment, wait_final

    matchers = [
        {"label": "cluster", "op": "=~", "value": "stg-.+"},
        {"label": "team", "value": "checkout"},
    ]
    watch = {**WATCH, "window_s": 3}
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin, "staging", pipeline_steps(("ship", "deploy", "true")), auto_rollback=True
        )
        good = start_deployment(admin, version="1.0.0")
        assert wait_final(admin, good)["status"] == "success"
        admin.patch(
            "/api/v1/environments/staging",
            json={
                "config": {
                    "pipeline": {**pipeline_steps(("ship", "deploy", "true")), "watch": watch},
                    "external_alert_matchers": matchers,
                }
            },
        ).raise_for_status()

        # An alert the environment labels would have put in staging, but its matchers do not
        # match (another cluster): the watch passes.
        calm = start_deployment(admin, version="2.0.0")
        assert wait_final(admin, calm)["status"] == "success"
        _deliver_now(
            clients,
            "not-ours",
            {"alertname": "PaymentsSlow", "environment": "staging", "cluster": "prod-1"},
        )
        passed = wait_for(
            lambda: (
                (d := admin.get(f"/api/v1/deployments/{calm}").json())["watch_state"] == "passed"
                and d
            ),
            timeout=30,
            interval=0.2,
        )
        assert passed["status"] == "success"
        assert not [a for a in passed["analysis"] if a.get("check") == "external alerts"]

        # One they match, though no label names an environment: the release rolls back.
        bad = start_deployment(admin, version="3.0.0")
        assert wait_final(admin, bad)["status"] == "success"
        _deliver_now(
            clients,
            "ours",
            {"alertname": "CheckoutErrors", "cluster": "stg-eu", "team": "checkout"},
        )

        def rolled_back() -> dict[str, Any] | None:
            detail = admin.get(f"/api/v1/deployments/{bad}").json()
            return detail if detail["status"] == "rolled_back" else None

        detail = wait_for(rolled_back, timeout=30, interval=0.2)
    (failure,) = [a for a in detail["analysis"] if a.get("check") == "external alerts"]
    assert failure["reason"] == "Alertmanager alert firing in staging: CheckoutErrors"
    assert [a["fingerprint"] for a in failure["alerts"]] == ["ours"]


def test_matchers_follow_alertmanagers_semantics() -> None:
    def alert(**labels: str) -> ExternalAlert:
        return ExternalAlert(fingerprint="f", labels=labels, environment=labels.get("env"))

    def of(*raw: dict[str, str]) -> list[ExternalAlertMatcher]:
        return [ExternalAlertMatcher.model_validate(m) for m in raw]

    regex = of({"label": "cluster", "op": "=~", "value": "stg-[a-z]+"})
    assert external.belongs(alert(cluster="stg-eu"), environment="staging", matchers=regex)
    # The whole value, as in Alertmanager: no partial match.
    assert not external.belongs(alert(cluster="x-stg-eu"), environment="staging", matchers=regex)
    negated = of({"label": "team", "value": "infra", "op": "!="}, *[m.model_dump() for m in regex])
    assert external.belongs(alert(cluster="stg-eu"), environment="staging", matchers=negated)
    assert not external.belongs(
        alert(cluster="stg-eu", team="infra"), environment="staging", matchers=negated
    )
    # A pathological pattern for a backtracking engine matches in linear time under RE2.
    slow = of({"label": "x", "op": "=~", "value": "(a+)+$"})
    assert not external.belongs(alert(x="a" * 50_000 + "b"), environment="s", matchers=slow)
    # Without matchers, the labels that named an environment on arrival decide.
    assert external.belongs(alert(env="staging"), environment="staging", matchers=None)
    assert not external.belongs(alert(cluster="stg-eu"), environment="staging", matchers=None)


def test_a_delivery_of_thousands_of_alerts_is_one_statement_and_its_last_word_wins(
    engine: Engine, clients: Clients
) -> None:
    # One merge per alert (a SELECT and a write each) held SQLite's write lock for 6 s, and
    # PostgreSQL's transaction for 9 s, on a delivery of 10,000.
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": f"A{i}", "environment": "production"},
            "startsAt": "2026-12-03T10:00:00Z",
            "fingerprint": f"fp{i}",
        }
        for i in range(2000)
    ]
    resolved = {**alerts[7], "status": "resolved", "endsAt": "2026-12-03T11:00:00Z"}
    body = {"version": "4", "status": "firing", "alerts": [*alerts, resolved]}
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with transaction(engine) as session:
            webhook = AlertmanagerWebhook.model_validate(body)
            external.receive(session, webhook=webhook, known_environments={"production"}, now=NOW)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    writes = [s for s in statements if "external_alerts" in s]
    assert len(writes) == 1, writes[:3]
    with clients.as_role("service") as service:
        again = service.post("/api/v1/integrations/alertmanager", json=body)
    assert again.json() == {"received": 2001}
    with transaction(engine) as session:
        rows = session.scalars(sa.select(ExternalAlert).order_by(ExternalAlert.fingerprint)).all()
    assert len(rows) == 2000
    by_fingerprint = {row.fingerprint: row for row in rows}
    assert by_fingerprint["fp7"].status == "resolved"
    assert by_fingerprint["fp8"].status == "firing"


def test_an_environments_matched_alerts_show_however_many_newer_ones_others_have(
    clients: Clients,
) -> None:
    # Matchers were applied to the newest 500 alerts of every environment: 600 newer alerts of
    # production hid staging's three.
    def alert(i: int, labels: dict[str, str], starts: str) -> dict[str, Any]:
        return {"status": "firing", "labels": labels, "startsAt": starts, "fingerprint": f"f{i}"}

    theirs = [
        alert(i, {"alertname": f"P{i}", "environment": "production"}, "2026-12-03T12:00:00Z")
        for i in range(600)
    ]
    ours = [
        alert(1000 + i, {"alertname": f"S{i}", "team": "checkout"}, "2026-12-03T10:00:00Z")
        for i in range(3)
    ]
    body = {"version": "4", "status": "firing", "alerts": [*theirs, *ours]}
    matchers = [{"label": "team", "op": "=", "value": "checkout"}]
    with clients.as_role("admin") as admin:
        config = {"config": {"external_alert_matchers": matchers}}
        assert admin.patch("/api/v1/environments/staging", json=config).status_code == 200
    with clients.as_role("service") as service:
        assert service.post("/api/v1/integrations/alertmanager", json=body).status_code == 200
    with clients.as_role("viewer") as viewer:
        items = viewer.get("/api/v1/external-alerts", params={"environment": "staging"}).json()
    assert sorted(a["alertname"] for a in items["items"]) == ["S0", "S1", "S2"]
