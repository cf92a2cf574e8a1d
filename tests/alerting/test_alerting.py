"""Alert rules, the alert state machine, silences, grouping, and deliveries to real receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.alerting import evaluation, evaluator, matching
from shipboard.db.engine import system_transaction
from shipboard.notifications.delivery import send_due
from shipboard.notifications.grouping import flush_groups
from tests.support.factories import create_channel, create_rule, push_points, tick_alerts
from tests.support.live import Clients, Receiver
from tests.support.problems import assert_problem

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


# --- pure -----------------------------------------------------------------------------------


def test_state_machine_honours_for_and_keep_firing_for() -> None:
    state = evaluation.AlertState("inactive")
    timeline = []
    for second, condition in [
        (0, True),
        (10, True),
        (30, True),
        (40, False),
        (50, False),
        (60, False),
    ]:
        state = evaluation.step(
            state, condition, T0 + timedelta(seconds=second), for_s=30, keep_firing_for_s=25
        )
        timeline.append(state.state)
    assert timeline == ["pending", "pending", "firing", "firing", "firing", "resolved"]
    assert state.starts_at == T0 + timedelta(seconds=30)
    assert state.ends_at == T0 + timedelta(seconds=60)
    pending = evaluation.step(
        evaluation.AlertState("inactive"), True, T0, for_s=30, keep_firing_for_s=0
    )
    assert (
        evaluation.step(
            pending, False, T0 + timedelta(seconds=5), for_s=30, keep_firing_for_s=0
        ).state
        == "resolved"
    )
    immediate = evaluation.step(
        evaluation.AlertState("inactive"), True, T0, for_s=0, keep_firing_for_s=0
    )
    assert immediate.state == "firing"


@pytest.mark.parametrize("method", ["robust_zscore", "ewma"])
def test_anomaly_fires_on_a_spike_and_not_on_noise(method: str) -> None:
    rng = random.Random(42)
    history = [100 + rng.gauss(0, 5) for _ in range(200)]
    noise = [100 + rng.gauss(0, 5) for _ in range(5)]
    spike = [160 + rng.gauss(0, 5) for _ in range(5)]
    quiet = evaluation.anomaly(history, noise, method=method, sensitivity=4, min_points=20)
    loud = evaluation.anomaly(history, spike, method=method, sensitivity=4, min_points=20)
    assert quiet.active is False, quiet.reason
    assert loud.active is True, loud.reason
    assert (
        evaluation.anomaly(history[:5], spike, method=method, sensitivity=4, min_points=20).active
        is None
    )


def test_silence_matchers() -> None:
    labels = {"alertname": "HighLatency", "environment": "production", "severity": "high"}
    assert matching.matches([{"name": "alertname", "value": "HighLatency"}], labels)
    assert matching.matches([{"name": "alertname", "value": "High.*", "isRegex": True}], labels)
    assert not matching.matches(
        [{"name": "environment", "value": "production", "isEqual": False}], labels
    )
    assert not matching.matches([{"name": "alertname", "value": "Other"}], labels)


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


def test_webhook_receives_signed_alertmanager_payload(
    clients: Clients, engine: Engine, receiver: Receiver
) -> None:
    with clients.as_role("admin") as admin:
        create_channel(admin, "ops-hook", receiver.url)
        create_rule(admin, "HighErrors", for_s=0, channels=["ops-hook"], labels={"team": "web"})
    push_points(engine, "errors", [50], T0 - timedelta(seconds=1))
    tick_alerts(engine, clients.server.app.state.keyring, T0)
    (headers, body) = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Shipboard-Signature"], expected)
    payload = json.loads(body)
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "ops-hook"
    assert payload["groupLabels"] == {"environment": "production"}
    assert payload["commonLabels"]["team"] == "web"
    (alert,) = payload["alerts"]
    assert {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    } <= set(alert)
    assert alert["annotations"]["summary"] == "HighErrors is high"
    # Resolution is told too.
    push_points(engine, "errors", [1], T0 + timedelta(seconds=60))
    tick_alerts(engine, clients.server.app.state.keyring, T0 + timedelta(seconds=61))
    tick_alerts(engine, clients.server.app.state.keyring, T0 + timedelta(seconds=95))
    statuses = [p["status"] for p in receiver.payloads()]
    assert statuses == ["firing", "resolved"]


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


def test_retries_until_the_receiver_recovers_then_exactly_one_success(
    clients: Clients, engine: Engine
) -> None:
    flaky = Receiver(statuses=[500, 500, 500, 200])
    try:
        with clients.as_role("admin") as admin:
            channel = create_channel(admin, "flaky", flaky.url)
            create_rule(admin, "HighErrors", for_s=0, channels=["flaky"])
        push_points(engine, "errors", [50], T0 - timedelta(seconds=1))
        keyring = clients.server.app.state.keyring
        tick_alerts(engine, keyring, T0)
        for minutes in range(1, 8):
            send_due(engine, keyring, now=T0 + timedelta(minutes=minutes))
        with clients.as_role("admin") as admin:
            (delivery,) = admin.get(
                f"/api/v1/notification-channels/{channel['id']}/deliveries"
            ).json()["items"]
    finally:
        flaky.server.shutdown()
    assert delivery["status"] == "sent"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]
    assert len(flaky.requests) == 4


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


def test_grouping_sends_one_message_for_five_alerts(
    clients: Clients, engine: Engine, receiver: Receiver
) -> None:
    with clients.as_role("admin") as admin:
        create_channel(admin, "ops-hook", receiver.url, group_wait_s=30)
        for i in range(5):
            create_rule(admin, f"Rule{i}", metric=f"errors_{i}", for_s=0, channels=["ops-hook"])
    for i in range(5):
        push_points(engine, f"errors_{i}", [50], T0 - timedelta(seconds=1))
    keyring = clients.server.app.state.keyring
    tick_alerts(engine, keyring, T0)
    assert receiver.requests == []  # group_wait collects first
    tick_alerts(engine, keyring, T0 + timedelta(seconds=31))
    (payload,) = receiver.payloads()
    assert len(payload["alerts"]) == 5
    assert payload["commonLabels"] == {"environment": "production", "severity": "high"}


def test_email_reaches_a_real_smtp_server(
    clients: Clients, engine: Engine, smtp: tuple[int, list[Any]]
) -> None:
    port, received = smtp
    with clients.as_role("admin") as admin:
        create_channel(
            admin,
            "mail",
            "",
            kind="email",
            config={
                "host": "127.0.0.1",
                "port": port,
                "from": "shipboard@example.org",
                "to": ["oncall@example.org"],
            },
        )
        create_rule(admin, "HighErrors", for_s=0, channels=["mail"])
    push_points(engine, "errors", [50], T0 - timedelta(seconds=1))
    tick_alerts(engine, clients.server.app.state.keyring, T0)
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    (envelope,) = received
    text = envelope.content.decode()
    assert envelope.rcpt_tos == ["oncall@example.org"]
    assert "Subject: [FIRING:1]" in text
    assert "HighErrors is high" in text
    assert "text/html" in text


def test_channel_api_hides_secrets_and_sends_a_test_message(
    clients: Clients, engine: Engine, receiver: Receiver
) -> None:
    with clients.as_role("admin") as admin:
        channel = create_channel(admin, "ops-hook", receiver.url)
        assert channel["config"]["secret"] == "***"
        listed = admin.get("/api/v1/notification-channels").json()["items"]
        assert "s3cret" not in json.dumps(listed)
        assert admin.post(f"/api/v1/notification-channels/{channel['id']}/test").status_code == 202
        assert_problem(
            admin.post(
                "/api/v1/notification-channels", json={"name": "x", "kind": "webhook", "config": {}}
            ),
            422,
        )
        assert_problem(
            admin.post(
                "/api/v1/alert-rules",
                json={"name": "n", "kind": "threshold", "environment": "production", "metric": "m"},
            ),
            422,
        )
        assert_problem(
            admin.post(
                "/api/v1/alert-rules",
                json={
                    "name": "n",
                    "kind": "threshold",
                    "environment": "production",
                    "metric": "m",
                    "value": 1,
                    "channels": ["nope"],
                },
            ),
            422,
        )
    with engine.connect() as conn:
        stored = json.dumps(
            [
                list(r)
                for r in conn.execute(
                    sa.text("SELECT config, secrets FROM notification_channels")
                ).all()
            ],
            default=str,
        )
    assert "s3cret" not in stored
    send_due(engine, clients.server.app.state.keyring)
    assert receiver.payloads()[0]["alerts"][0]["labels"]["alertname"] == "ShipboardTest"


def test_delivery_gives_up_after_max_attempts(clients: Clients, engine: Engine) -> None:
    dead = Receiver(statuses=[500] * 10)
    try:
        with clients.as_role("admin") as admin:
            channel = create_channel(admin, "dead", dead.url)
            admin.post(f"/api/v1/notification-channels/{channel['id']}/test")
        keyring = clients.server.app.state.keyring
        for minutes in range(6):
            send_due(
                engine, keyring, now=datetime.now(UTC) + timedelta(minutes=minutes), max_attempts=3
            )
        with clients.as_role("admin") as admin:
            (delivery,) = admin.get(
                f"/api/v1/notification-channels/{channel['id']}/deliveries"
            ).json()["items"]
    finally:
        dead.server.shutdown()
    assert delivery["status"] == "failed"
    assert len(delivery["attempts"]) == 3
    assert len(dead.requests) == 3


@pytest.mark.parametrize("kind", ["slack", "alertmanager"])
def test_slack_and_alertmanager_shapes(
    clients: Clients, engine: Engine, receiver: Receiver, kind: str
) -> None:
    with clients.as_role("admin") as admin:
        channel = create_channel(
            admin, f"{kind}-channel", receiver.url, kind=kind, config={"url": receiver.url}
        )
        admin.post(f"/api/v1/notification-channels/{channel['id']}/test")
    send_due(engine, clients.server.app.state.keyring)
    (body,) = receiver.payloads()
    if kind == "slack":
        assert body["text"].startswith("[FIRING:1]")
        assert "Test message from Shipboard" in body["text"]
    else:
        (alert,) = body
        assert alert["labels"]["alertname"] == "ShipboardTest"
        assert receiver.requests[0][0]["Host"].startswith("127.0.0.1")
