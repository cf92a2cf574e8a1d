"""Shipboard's alerts in a real Alertmanager (Debian's prometheus-alertmanager, started per test):
they stay active exactly as long as they fire, and links point at SHIPBOARD_PUBLIC_URL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from shipboard.background import runtime
from shipboard.db.engine import transaction
from shipboard.jobs.runtime import Runtime
from shipboard.monitoring.schemas import MonitoringMetricCreate
from shipboard.monitoring.service import ingest_metrics
from tests.support.live import Alertmanager, Clients, Receiver, wait_for

PUBLIC = "https://shipboard.example.com/sb"
RESOLVE_TIMEOUT_S = 5
CONFIG = f"""
global:
  resolve_timeout: {RESOLVE_TIMEOUT_S}s
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""


@pytest.fixture
def alertmanager() -> Iterator[Alertmanager]:
    am = Alertmanager(CONFIG)
    try:
        yield am
    finally:
        am.stop()


@pytest.fixture
def scheduler(clients: Clients, engine: Engine) -> Iterator[Runtime]:
    """The real job runtime, fast: evaluation every 0.3 s, firing alerts re-sent every second."""
    instance = runtime(
        engine,
        clients.server.app.state.keyring,
        eval_interval_s=0.3,
        poll_s=0.05,
        alertmanager_resend_s=1.0,
        public_url=PUBLIC,
    )
    stop = instance.start()
    yield instance
    stop.set()
    assert instance.thread is not None
    instance.thread.join(timeout=30)


def _push(engine: Engine, metric: str) -> None:
    with transaction(engine) as session:
        ingest_metrics(
            session,
            metrics=[
                MonitoringMetricCreate(
                    name=metric,
                    value=1,
                    timestamp=datetime.now(UTC) - timedelta(milliseconds=100),
                    environment="production",
                    source="application",
                )
            ],
        )


def _setup(
    admin: httpx.Client, am: Alertmanager, name: str, *, window_s: int, hook: str | None = None
) -> dict[str, Any]:
    """An Alertmanager channel (and a webhook one), and a rule that fires while a point of
    ``name`` lies in its window."""
    channels = [f"am-{name}"]
    response = admin.post(
        "/api/v1/notification-channels",
        json={"name": f"am-{name}", "kind": "alertmanager", "config": {"url": am.url}},
    )
    assert response.status_code == 201, response.text
    if hook is not None:
        channels.append(f"hook-{name}")
        response = admin.post(
            "/api/v1/notification-channels",
            json={
                "name": f"hook-{name}",
                "kind": "webhook",
                "config": {"url": hook},
                "group_wait_s": 0,
                "group_interval_s": 0,
            },
        )
        assert response.status_code == 201, response.text
    rule = admin.post(
        "/api/v1/alert-rules",
        json={
            "name": name,
            "kind": "threshold",
            "environment": "production",
            "metric": name,
            "agg": "count",
            "window_s": window_s,
            "op": ">",
            "value": 0,
            "for_s": 0,
            "severity": "high",
            "annotations": {"summary": f"{name} seen"},
            "channels": channels,
        },
    )
    assert rule.status_code == 201, rule.text
    return dict(rule.json())


def _shipboard_alert(admin: httpx.Client, rule_id: str) -> dict[str, Any] | None:
    alerts = admin.get("/api/v1/alerts").json()["items"]
    return next((a for a in alerts if a["rule_id"] == rule_id), None)


def test_firing_alert_stays_active_past_resolve_timeout_and_resolves_when_it_stops(
    clients: Clients, engine: Engine, alertmanager: Alertmanager, scheduler: Runtime
) -> None:
    with clients.as_role("admin") as admin:
        rule = _setup(admin, alertmanager, "AMStaysActive", window_s=14)
        _push(engine, "AMStaysActive")
        (first,) = wait_for(lambda: alertmanager.alerts("AMStaysActive"), timeout=10)
        seen_at = time.monotonic()
        alert = _shipboard_alert(admin, rule["id"])
        assert alert is not None
        assert alert["state"] == "firing"
        assert first["generatorURL"] == f"{PUBLIC}/alerts/{alert['id']}"
        # endsAt is a few evaluation intervals ahead, never Alertmanager's resolve_timeout.
        ends = datetime.fromisoformat(first["endsAt"].replace("Z", "+00:00"))
        assert timedelta(seconds=1) < ends - datetime.now(UTC) < timedelta(seconds=6)
        # Well past resolve_timeout (and past any one endsAt sent), still firing, still active.
        time.sleep(max(0.0, seen_at + RESOLVE_TIMEOUT_S + 3 - time.monotonic()))
        current = _shipboard_alert(admin, rule["id"])
        assert current is not None
        assert current["state"] == "firing"
        (still,) = alertmanager.alerts("AMStaysActive")
        assert still["status"]["state"] == "active"
        assert still["startsAt"] == first["startsAt"]
        # The point leaves the window: resolved in Shipboard, then in Alertmanager at once.
        wait_for(
            lambda: (_shipboard_alert(admin, rule["id"]) or {}).get("state") == "resolved",
            timeout=15,
        )
        resolved_at = time.monotonic()
        wait_for(lambda: not alertmanager.alerts("AMStaysActive"), timeout=5, interval=0.1)
        # Told, not timed out: Alertmanager would have kept it up to 4 s more on its own.
        assert time.monotonic() - resolved_at < 3


@pytest.mark.parametrize("how", ["disable", "delete"])
def test_disabling_or_deleting_a_firing_rule_resolves_its_alert_everywhere(
    clients: Clients,
    engine: Engine,
    alertmanager: Alertmanager,
    scheduler: Runtime,
    receiver: Receiver,
    how: str,
) -> None:
    name = f"AMStandDown{how.title()}"
    with clients.as_role("admin") as admin:
        rule = _setup(admin, alertmanager, name, window_s=600, hook=receiver.url)
        _push(engine, name)
        wait_for(lambda: alertmanager.alerts(name), timeout=10)
        wait_for(lambda: [p for p in receiver.payloads() if p["status"] == "firing"], timeout=10)
        alert = _shipboard_alert(admin, rule["id"])
        assert alert is not None
        if how == "disable":
            response = admin.patch(f"/api/v1/alert-rules/{rule['id']}", json={"enabled": False})
            assert response.status_code == 200, response.text
            assert response.json()["enabled"] is False
            resolved = _shipboard_alert(admin, rule["id"])
            assert resolved is not None
            assert resolved["state"] == "resolved"
            assert "disabled" in resolved["transitions"][-1]["reason"]
        else:
            response = admin.delete(f"/api/v1/alert-rules/{rule['id']}")
            assert response.status_code == 204, response.text
            assert _shipboard_alert(admin, rule["id"]) is None
        # Alertmanager and the webhook channel hear of the resolution, well before endsAt.
        wait_for(lambda: not alertmanager.alerts(name), timeout=2, interval=0.1)
        told = wait_for(
            lambda: [p for p in receiver.payloads() if p["status"] == "resolved"], timeout=5
        )
        assert told[0]["alerts"][0]["labels"]["alertname"] == name
        assert told[0]["alerts"][0]["generatorURL"] == f"{PUBLIC}/alerts/{alert['id']}"
        # Nothing fires again: the rule no longer runs.
        time.sleep(1.5)
        assert not alertmanager.alerts(name)
        assert [p["status"] for p in receiver.payloads()] == ["firing", "resolved"]
