"""Alert rules end to end on a fake clock: their lifecycle, rules that cannot be evaluated,
silences, and the links in what is sent. Evaluation itself is tested directly in
test_evaluation.py and test_matching.py; deliveries in tests/notifications/."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.alerting import evaluator
from shipboard.db.engine import system_transaction
from shipboard.notifications.delivery import send_due
from shipboard.notifications.grouping import flush_groups
from tests.support.factories import create_channel, create_rule, push_points, tick_alerts
from tests.support.live import Clients, Receiver

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def test_threshold_rule_lifecycle_on_a_fake_clock(clients: Clients, engine: Engine) -> None:
    with clients.as_role("admin") as admin:
        rule = create_rule(admin, "HighErrors", window_s=20)
    keyring = clients.server.app.state.keyring
    states = []
    for second, value in [(0, 50), (15, 50), (35, 50), (65, 50), (80, 1), (100, 1), (115, 1)]:
        now = T0 + timedelta(seconds=second)
        push_points(engine, "errors", [value], now - timedelta(seconds=1))
        tick_alerts(engine, keyring, now)
        with clients.as_role("viewer") as viewer:
            alerts = viewer.get("/api/v1/alerts").json()["items"]
        states.append(alerts[0]["state"] if alerts else None)
    assert states == ["pending", "pending", "firing", "firing", "firing", "firing", "resolved"]
    with clients.as_role("viewer") as viewer:
        (alert,) = viewer.get("/api/v1/alerts").json()["items"]
        health = viewer.get(f"/api/v1/alert-rules/{rule['id']}").json()["health"]
    assert [(t["from"], t["to"]) for t in alert["transitions"]] == [
        ("inactive", "pending"),
        ("pending", "firing"),
        ("firing", "resolved"),
    ]
    assert alert["value"] == 1
    assert alert["labels"] == {
        "alertname": "HighErrors",
        "environment": "production",
        "severity": "high",
    }
    assert len(alert["fingerprint"]) == 16
    assert health == "ok"


def test_rule_that_cannot_be_evaluated_shows_as_erroring(clients: Clients, engine: Engine) -> None:
    with clients.as_role("admin") as admin:
        rule = create_rule(admin, "Broken")
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE alert_rules SET spec = :s"),
            {"s": json.dumps({"window_s": 60, "agg": "median", "op": ">", "value": 1})},
        )
    push_points(engine, "errors", [5], T0 - timedelta(seconds=1))
    tick_alerts(engine, clients.server.app.state.keyring, T0)
    with clients.as_role("viewer") as viewer:
        body = viewer.get(f"/api/v1/alert-rules/{rule['id']}").json()
    assert body["health"] == "error"
    assert "median" in body["last_error"]


def test_every_link_sent_uses_the_public_url(
    clients: Clients, engine: Engine, receiver: Receiver, smtp: tuple[int, list[Any]]
) -> None:
    public = "https://shipboard.example.com/sb"
    port, envelopes = smtp
    with clients.as_role("admin") as admin:
        create_channel(admin, "links-hook", receiver.url)
        create_channel(
            admin, "links-slack", receiver.url, kind="slack", config={"url": receiver.url}
        )
        create_channel(
            admin,
            "links-mail",
            receiver.url,
            kind="email",
            config={"host": "127.0.0.1", "port": port, "from": "sb@example.com", "to": "o@x.io"},
        )
        create_rule(
            admin,
            "HighErrors",
            for_s=0,
            channels=["links-hook", "links-slack", "links-mail"],
        )
        admin.patch(
            "/api/v1/environments/staging",
            json={"config": {"notification_channels": ["links-hook"]}},
        ).raise_for_status()
    push_points(engine, "errors", [50], T0 - timedelta(seconds=1))
    keyring = clients.server.app.state.keyring
    with system_transaction(engine) as session:
        evaluator.evaluate_rules(session, now=T0)
        flush_groups(session, now=T0, alerts_for=evaluator.group_alerts(session, T0))
    with clients.as_role("service") as ci:
        created = ci.post(
            "/api/v1/deployments",
            json={"environment": "staging", "version": "9.9.9", "commit_sha": "a" * 40},
        )
        assert created.status_code == 201, created.text
        started = ci.post(
            f"/api/v1/deployments/{created.json()['id']}/status", json={"status": "building"}
        )
        assert started.status_code == 200, started.text
    send_due(engine, keyring, public_url=public)
    with clients.as_role("viewer") as viewer:
        (alert,) = viewer.get("/api/v1/alerts").json()["items"]
    page = f"{public}/alerts/{alert['id']}"
    bodies = receiver.payloads()
    (webhook,) = [b for b in bodies if b.get("version") == "4"]
    assert webhook["externalURL"] == f"{public}/"
    assert webhook["alerts"][0]["generatorURL"] == page
    (slack,) = [b for b in bodies if "text" in b]
    assert page in slack["text"]
    (event,) = [b for b in bodies if str(b.get("event", "")).startswith("deployment.")]
    assert event["url"] == f"{public}/deployments/{created.json()['id']}"
    (mail,) = envelopes
    assert page in mail.content.decode()
    assert "localhost:8000" not in json.dumps(bodies) + mail.content.decode()


def test_public_url_setting_is_validated() -> None:
    from pydantic import ValidationError

    from shipboard.config import Settings

    assert Settings(public_url="https://ship.example.com/sb/").public_url == (
        "https://ship.example.com/sb"
    )
    assert Settings().effective_public_url == "http://localhost:8000"
    for bad in (
        "ftp://x.example",
        "ship.example.com",
        "https://",
        "https://x/?a=1",
        "http://u:p@x",
    ):
        with pytest.raises(ValidationError, match="SHIPBOARD_PUBLIC_URL"):
            Settings(public_url=bad)


def test_silence_mutes_and_expiry_notifies_again(
    clients: Clients, engine: Engine, receiver: Receiver
) -> None:
    keyring = clients.server.app.state.keyring
    # Silences are created and expired on the real clock, so this test runs on it too.
    start = datetime.now(UTC)
    with clients.as_role("admin") as admin:
        create_channel(admin, "ops-hook", receiver.url)
        create_rule(admin, "HighErrors", for_s=0, channels=["ops-hook"])
        silence = admin.post(
            "/api/v1/silences",
            json={
                "matchers": [{"name": "alertname", "value": "HighErrors"}],
                "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                "comment": "maintenance",
            },
        ).json()
    push_points(engine, "errors", [50], start)
    # After the silence began: on a loaded machine the three requests above can take longer
    # than any fixed offset from `start`.
    muted_at = datetime.fromisoformat(silence["starts_at"]) + timedelta(milliseconds=100)
    tick_alerts(engine, keyring, max(start + timedelta(milliseconds=500), muted_at))
    with clients.as_role("viewer") as viewer:
        (alert,) = viewer.get("/api/v1/alerts").json()["items"]
    assert alert["state"] == "firing"
    assert alert["silenced"] is True
    assert receiver.requests == []
    with clients.as_role("admin") as admin:
        assert admin.delete(f"/api/v1/silences/{silence['id']}").json()["active"] is False
    later = datetime.now(UTC) + timedelta(seconds=1)
    push_points(engine, "errors", [50], later - timedelta(seconds=1))
    tick_alerts(engine, keyring, later)
    assert [p["status"] for p in receiver.payloads()] == ["firing"]
