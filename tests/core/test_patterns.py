"""User-supplied patterns (silence regexes, workflow and metric globs): refused when they do not
compile, matched in linear time, and harmless when a bad one is already stored."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from shipboard.alerting import matching
from shipboard.alerting.models import Silence
from shipboard.core import patterns
from shipboard.db.engine import system_transaction
from tests.support.factories import create_rule, push_points, tick_alerts
from tests.support.live import Clients
from tests.support.problems import assert_problem
from tests.support.web import signed_in

CATASTROPHIC = "(a+)+$"  # exponential for a backtracking engine on "aaa…b"


def _silence(matchers: list[dict[str, object]]) -> dict[str, object]:
    return {
        "matchers": matchers,
        "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "comment": "maintenance",
    }


# --- pure -----------------------------------------------------------------------------------


def test_regex_matchers_are_anchored_like_alertmanagers() -> None:
    labels = {"alertname": "HighLatency", "environment": "production"}
    assert matching.matches([{"name": "alertname", "value": "High.*", "isRegex": True}], labels)
    assert not matching.matches([{"name": "alertname", "value": "High", "isRegex": True}], labels)
    assert not matching.matches(
        [{"name": "alertname", "value": "Latency", "isRegex": True}], labels
    )
    assert matching.matches(
        [{"name": "environment", "value": "prod|production", "isRegex": True}], labels
    )
    # "a)|(b" only compiles once wrapped; it is refused on its own, as Alertmanager would.
    assert patterns.regex_problem("a)|(b") is not None
    assert matching.matches(
        [{"name": "environment", "value": "staging.*", "isRegex": True, "isEqual": False}], labels
    )


def test_a_catastrophic_regex_matches_a_long_string_in_linear_time() -> None:
    text = "a" * 100_000 + "b"
    started = time.monotonic()
    assert not matching.matches(
        [{"name": "x", "value": CATASTROPHIC, "isRegex": True}], {"x": text}
    )
    assert not patterns.glob_matches("*a*a*a*a*a*a*a*a*a*a*c", text)
    assert time.monotonic() - started < 1


def test_globs_match_like_shell_globs() -> None:
    assert patterns.glob_matches("*deploy*", "Deploy production", ignore_case=True)
    assert not patterns.glob_matches("*deploy*", "Deploy production")
    assert patterns.glob_matches("te?t", "test")
    assert patterns.glob_matches("latency_[ab]", "latency_b")
    assert not patterns.glob_matches("latency_[!ab]", "latency_b")
    assert patterns.glob_matches("a.b(c)", "a.b(c)")  # regex syntax is literal in a glob
    assert not patterns.glob_matches("a.b", "axb")
    assert patterns.glob_matches("[", "[")  # an unclosed class is a literal, as in fnmatch
    assert patterns.glob_matches("line*", "line one\nline two")


def test_a_stored_invalid_pattern_matches_nothing() -> None:
    labels = {"alertname": "HighLatency"}
    for matcher in (
        {"name": "alertname", "value": "(", "isRegex": True},
        {"name": "alertname", "value": "(", "isRegex": True, "isEqual": False},
        {"name": "alertname", "value": r"(a)\1", "isRegex": True},  # backreference: not RE2
    ):
        assert not matching.matches([matcher], labels), matcher


# --- over HTTP ------------------------------------------------------------------------------


def test_invalid_regex_matchers_are_refused_naming_their_position(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        for bad in ("(", "[z-a]", r"(a)\1", "a{2000}", "x" * 5000, "a)|(b"):
            body = assert_problem(
                client.post(
                    "/api/v1/silences",
                    json=_silence(
                        [
                            {"name": "environment", "value": "production"},
                            {"name": "alertname", "value": bad, "isRegex": True},
                        ]
                    ),
                ),
                422,
            )
            assert body["errors"][0]["loc"] == ["body", "matchers", 1, "value"], (bad, body)
        # Not a regex: the same text is a literal value and is fine.
        literal = client.post(
            "/api/v1/silences", json=_silence([{"name": "alertname", "value": "("}])
        )
        assert literal.status_code == 201, literal.text
        assert len(client.get("/api/v1/silences").json()["items"]) == 1


def test_catastrophic_silence_does_not_stall_alert_listing(
    clients: Clients, engine: Engine
) -> None:
    start = datetime.now(UTC)
    with clients.as_role("admin") as admin:
        # Enough "a"s to take a backtracking engine ~10 s; RE2 takes microseconds.
        create_rule(admin, "HighErrors", for_s=0, labels={"team": "a" * 27 + "b"})
        created = admin.post(
            "/api/v1/silences",
            json=_silence([{"name": "team", "value": CATASTROPHIC, "isRegex": True}]),
        )
        assert created.status_code == 201, created.text
    push_points(engine, "errors", [50], start)
    started = time.monotonic()
    tick_alerts(engine, clients.server.app.state.keyring, start + timedelta(milliseconds=500))
    with clients.as_role("viewer") as viewer:
        (alert,) = viewer.get("/api/v1/alerts").json()["items"]
    assert time.monotonic() - started < 3
    assert alert["state"] == "firing"
    assert alert["silenced"] is False


def test_a_bad_stored_silence_breaks_no_listing_or_page(clients: Clients, engine: Engine) -> None:
    now = datetime.now(UTC)
    with system_transaction(engine) as session:
        session.add(
            Silence(
                id=uuid.uuid4(),
                matchers=[{"name": "alertname", "value": "(", "isRegex": True}],
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=1),
                created_by="someone",
                comment="written straight into the database",
                created_at=now,
            )
        )
    with clients.as_role("admin") as admin:
        create_rule(admin, "HighErrors", for_s=0)
    push_points(engine, "errors", [50], now)
    tick_alerts(engine, clients.server.app.state.keyring, now + timedelta(milliseconds=500))
    with clients.as_role("viewer") as viewer:
        alerts = viewer.get("/api/v1/alerts")
        assert alerts.status_code == 200, alerts.text
        assert alerts.json()["items"][0]["silenced"] is False
        assert viewer.get("/api/v1/silences").status_code == 200
    with signed_in(clients, engine, "viewer") as client:
        for page in ("/", "/monitoring", "/monitoring?environment=production"):
            assert client.get(page).status_code == 200, page


@pytest.mark.parametrize("glob", ["[z-a]*", "x" * 300])
def test_invalid_workflow_globs_are_refused(clients: Clients, glob: str) -> None:
    with clients.as_role("admin") as admin:
        body = assert_problem(
            admin.put(
                "/api/v1/integrations/github",
                json={"secret": "s" * 32, "deploy_workflow": glob},
            ),
            422,
        )
    assert body["errors"][0]["loc"] == ["body", "deploy_workflow"], body
