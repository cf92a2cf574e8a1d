"""DORA over deployments recorded through the service layer, and reports delivered on a
schedule to a real SMTP server and a webhook receiver."""

from __future__ import annotations

import email
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import httpx
from sqlalchemy import Engine

from shipboard.auth.schemas import Principal
from shipboard.db.engine import system_transaction
from shipboard.deployments import service as deployments
from shipboard.deployments.schemas import DeploymentCreate
from shipboard.jobs.queue import Claimed, JobKind, run_one
from shipboard.jobs.schedule import Schedule
from shipboard.notifications.delivery import send_due
from shipboard.reports import tasks as report_tasks
from shipboard.reports.schemas import DoraReport
from tests.support.databases import SYSTEM
from tests.support.factories import create_channel
from tests.support.live import Clients, Receiver
from tests.support.problems import assert_problem

ADMIN = Principal(user_id=uuid.uuid4(), name="admin-user", role="admin")
MONDAY = datetime(2026, 10, 5, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


def _deploy(
    engine: Engine, version: str, *, created: datetime, commit: datetime | None, outcome: str
) -> str:
    """A reported staging deployment advanced to ``outcome`` at ``created`` + 1 h."""
    with system_transaction(engine) as session:
        detail = deployments.create_deployment(
            session,
            data=DeploymentCreate(
                environment="staging",
                version=version,
                commit_sha="abcdef1",
                commit_timestamp=commit,
            ),
            caller=ADMIN,
            audit_context=SYSTEM,
            now=created,
        )
        row = deployments.repository.get(session, detail.id)
        assert row is not None
        row.created_at = created
        for status in ("building", "deploying"):
            deployments.transition(session, row, status, actor="ci", now=created)
        if outcome == "cancelled":
            deployments.transition(
                session, row, "failed", actor="ci", error_message="cancelled by ci", now=created
            )
        else:
            deployments.transition(
                session, row, outcome, actor="ci", now=created + timedelta(hours=1)
            )
        return str(detail.id)


def _rollback(engine: Engine, deployment_id: str, *, finished: datetime) -> str:
    import uuid

    with system_transaction(engine) as session:
        detail = deployments.rollback(
            session, deployment_id=uuid.UUID(deployment_id), caller=ADMIN, audit_context=None
        )
        row = deployments.repository.get(session, detail.id)
        assert row is not None
        for status in ("building", "deploying", "success"):
            deployments.transition(session, row, status, actor="ci", now=finished)
        return str(detail.id)


def _history(engine: Engine) -> None:
    # Week 1 (Mon 5 Oct): D1 succeeds; D2 fails and is rolled back half an hour later.
    d1 = _deploy(engine, "1.0", created=at(0, 10), commit=at(0, 8), outcome="success")
    d2 = _deploy(engine, "1.1", created=at(1, 10), commit=at(0, 10), outcome="failed")
    _rollback(engine, d2, finished=at(1, 11, 30))
    # Week 2: D3 succeeds 24 h after its commit; D4 is cancelled (not a change failure).
    _deploy(engine, "1.2", created=at(8, 12), commit=at(7, 13), outcome="success")
    _deploy(engine, "1.3", created=at(9, 12), commit=None, outcome="cancelled")
    # Outside the period: ignored.
    _deploy(engine, "0.9", created=at(-3, 10), commit=None, outcome="failed")
    assert d1


def test_dora_over_a_constructed_history(clients: Clients, engine: Engine) -> None:
    _history(engine)
    params = {
        "environment": "staging",
        "since": MONDAY.isoformat(),
        "until": (MONDAY + timedelta(days=14)).isoformat(),
    }
    with clients.as_role("viewer") as viewer:
        report = viewer.get("/api/v1/reports/dora", params=params).json()
        text = viewer.get("/api/v1/reports/dora", params={**params, "format": "csv"}).text
        page = viewer.get("/api/v1/reports/dora", params={**params, "format": "html"})
    DoraReport.model_validate(report)  # what OpenAPI says is what is sent
    # Reached production: D1, the rollback, D3 (D2 failed before its rollback: not counted).
    assert report["deployment_frequency"] == {
        "per_day": 3 / 14,
        "bucket": "weekly",  # weeks with 2 and 1 deployment days: median 1.5
        "deployments": 3,
    }
    # D1: 3 h (commit 08:00, done 11:00); D3: 24 h; the rollback has no commit time.
    assert report["lead_time_for_changes"] == {
        "median_seconds": (3 * 3600 + 24 * 3600) / 2,  # 13.5 h
        "bucket": "less_than_one_day",
        "deployments": 2,
    }
    # D2 failed and was rolled back: counted once. Completed: D1, D2, rollback, D3.
    assert report["change_failure_rate"] == {"value": 0.25, "failed": 1, "completed": 4}
    # D2 failed at 11:00 on day 1; the rollback succeeded at 11:30.
    assert report["time_to_restore"]["median_seconds"] == 1800
    assert report["time_to_restore"]["restorations"] == 1
    assert [w["deployments"] for w in report["weekly"]] == [2, 1]
    assert [w["week_start"] for w in report["weekly"]] == ["2026-10-05", "2026-10-12"]
    assert "total" in text.splitlines()[1]
    assert page.headers["content-type"].startswith("text/html")
    assert "25" in page.text  # the change failure rate, as a percentage


def test_dora_defaults_and_bad_periods(clients: Clients) -> None:
    with clients.as_role("viewer") as viewer:
        report = viewer.get("/api/v1/reports/dora").json()
        assert report["environment"] == "production"
        since = datetime.fromisoformat(report["since"])
        until = datetime.fromisoformat(report["until"])
        assert until - since == timedelta(days=90)
        assert report["deployment_frequency"]["bucket"] is None
        for params in (
            {"since": "2026-10-10T00:00:00Z", "until": "2026-10-01T00:00:00Z"},
            {"since": "2026-10-10T00:00:00"},
            {"since": "2010-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            {"environment": "qa"},  # the spec's three environments only
        ):
            assert_problem(viewer.get("/api/v1/reports/dora", params=params), 422)


def _patch(client: httpx.Client, environment: str, config: dict[str, Any]) -> httpx.Response:
    return client.patch(
        f"/api/v1/environments/{environment}",
        json={"config": config},
        headers={"Content-Type": "application/merge-patch+json"},
    )


def test_scheduled_reports_reach_email_and_webhook(
    clients: Clients, engine: Engine, receiver: Receiver, smtp: Any
) -> None:
    port, received = smtp
    with clients.as_role("admin") as admin:
        create_channel(admin, "hook", receiver.url)
        create_channel(
            admin,
            "mail",
            "",
            kind="email",
            config={
                "host": "127.0.0.1",
                "port": port,
                "from": "sb@example.org",
                "to": ["cto@x.org"],
            },
        )
        for bad in (
            [{"kind": "dora", "cron": "every monday", "channels": ["mail"]}],
            [{"kind": "dora", "cron": "0 9 * * 1", "channels": []}],
            [{"kind": "gossip", "cron": "0 9 * * 1", "channels": ["mail"]}],
            [{"kind": "dora", "cron": "0 9 * * 1", "timezone": "Mars/Base", "channels": ["mail"]}],
            [{"kind": "dora", "cron": "0 9 * * 1", "period": "forever", "channels": ["mail"]}],
        ):
            assert_problem(_patch(admin, "staging", {"reports": bad}), 422)
        _patch(
            admin,
            "staging",
            {
                "reports": [
                    # 09:00 in Berlin on Mondays is 08:00 UTC in winter.
                    {
                        "kind": "dora",
                        "cron": "0 9 * * 1",
                        "timezone": "Europe/Berlin",
                        "channels": ["mail", "hook", "nobody"],
                        "period": "30d",
                    },
                    {"kind": "performance", "cron": "0 12 * * *", "channels": ["hook"]},
                ]
            },
        ).raise_for_status()
    schedule = Schedule(engine, report_tasks.scheduled())
    delivered: list[int] = []

    def deliver(eng: Engine, claimed: Claimed) -> None:
        delivered.append(report_tasks.deliver_report(eng, claimed))

    kinds = [JobKind(report_tasks.JOB, deliver)]

    def queued(now: datetime) -> int:
        """How many deliveries the reports due at ``now`` queued (through their jobs)."""
        ran = schedule.run_if_due(schedule.task("reports.scheduled"), now=now)
        assert ran is not None
        delivered.clear()
        while run_one(engine, kinds, worker="w"):
            pass
        assert len(delivered) == ran.result
        return sum(delivered)

    monday = datetime(2026, 11, 30, tzinfo=UTC)
    assert queued(monday + timedelta(hours=7, minutes=58)) == 0
    assert queued(monday + timedelta(hours=7, minutes=59)) == 0
    assert queued(monday + timedelta(hours=8, minutes=0, seconds=5)) == 2
    assert queued(monday + timedelta(hours=8, minutes=1)) == 0
    send_due(engine, clients.server.app.state.keyring, now=monday + timedelta(hours=8, minutes=1))
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    (envelope,) = received
    message: Message = email.message_from_bytes(envelope.content)
    assert "DORA metrics" in str(message["Subject"])
    parts = {part.get_content_type(): part for part in message.walk()}
    assert "DORA" in parts["text/html"].get_payload(decode=True).decode()  # type: ignore[union-attr]
    attachment = parts["text/csv"]
    assert attachment.get_filename() == "dora-staging-20261130.csv"
    assert attachment.get_payload(decode=True).decode().startswith("week_start,")  # type: ignore[union-attr]
    (hooked,) = receiver.payloads()
    assert hooked["event"] == "report.dora"
    assert hooked["report"]["environment"] == "staging"
    assert "attachments" not in hooked
    # The noon report fires once at noon UTC.
    assert queued(monday + timedelta(hours=12, seconds=1)) == 1
    with clients.as_role("admin") as admin:
        channels = {
            c["name"]: c["id"] for c in admin.get("/api/v1/notification-channels").json()["items"]
        }
        deliveries = admin.get(
            f"/api/v1/notification-channels/{channels['hook']}/deliveries"
        ).json()["items"]
    assert sorted(d["event"] for d in deliveries) == ["report.dora", "report.performance"]
