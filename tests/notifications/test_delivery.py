"""Notification deliveries to real receivers: signed webhooks, Slack and Alertmanager shapes,
e-mail to a real SMTP server, grouping, retries with backoff until a success or the last
attempt, and the channel API that hides secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.notifications.delivery import send_due
from tests.support.factories import create_channel, create_rule, push_points, tick_alerts
from tests.support.live import Clients, Receiver
from tests.support.problems import assert_problem

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


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
