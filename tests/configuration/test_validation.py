"""One validator for every configuration write; stored configuration that it refuses blocks a
deploy with a reason (fail closed) and never makes a page or a listing answer 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.core.cron import cron_problem, zone_problem
from shipboard.core.errors import InvalidInput
from shipboard.environments import validation
from tests.support.databases import Database
from tests.support.live import Clients
from tests.support.problems import assert_problem
from tests.support.web import signed_in

BAD_ZONE = {"cron": "0 3 * * *", "duration_minutes": 30, "timezone": "Mars/Olympus"}
DEPLOY = {"environment": "staging", "version": "1.0.0", "commit_sha": "abcdef1"}


# --- the validator itself (pure) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("0 0 30 2 *", "never fires within a year"),
        ("0 0 31 4 *", "never fires within a year"),
        ("0 0 29 2 *", "never fires within a year"),  # next leap day is more than a year away
        ("* * * * * *", "five-field"),
        ("H * * * *", "not a cron expression"),
        ("61 * * * *", "not a cron expression"),
        ("", "must be a cron expression"),
        ("0 " * 60, "at most 100 characters"),
    ],
)
def test_cron_that_does_not_parse_or_never_fires_is_refused(expr: str, fragment: str) -> None:
    problem = cron_problem(expr, now=datetime(2026, 12, 3, tzinfo=UTC))
    assert problem is not None
    assert fragment in problem


@pytest.mark.parametrize("expr", ["0 3 * * *", "*/5 * * * 1-5", "@daily", "0 0 L * *"])
def test_cron_that_fires_within_a_year_passes(expr: str) -> None:
    assert cron_problem(expr) is None


def test_checking_a_never_firing_cron_takes_bounded_time() -> None:
    started = time.perf_counter()
    for _ in range(50):
        assert cron_problem("0 0 31 11 *") is not None
        assert cron_problem("0 0 30 2 *") is not None
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "Europe/Nowhere", "../../etc/passwd", 5])
def test_unknown_time_zone_is_refused(zone: object) -> None:
    assert zone_problem(zone) is not None


def test_problems_name_the_full_path() -> None:
    config = {
        "freeze_windows": [BAD_ZONE],
        "pipeline": {"steps": [{"name": "x", "stage": "ship", "run": "true"}]},
        "monitoring": {"scrape": [{"url": "http://app:9100/metrics", "interval_s": 0}]},
        "reports": [{"kind": "dora", "cron": "0 0 31 2 *", "channels": ["c"]}],
        "security": {"schedule": [{"type": "sast", "target": "/srv", "cron": "nope"}]},
        "notification_channels": "deploys",
    }
    paths = {validation.format_loc(p["loc"]) for p in validation.config_problems(config)}
    assert paths == {
        "config.freeze_windows[0].timezone",
        "config.pipeline.steps[0].stage",
        "config.monitoring.scrape[0].interval_s",
        "config.reports[0].cron",
        "config.security.schedule[0].cron",
        "config.notification_channels",
    }


def test_validate_environment_raises_invalid_input_naming_the_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        validation.validate_environment(
            {"domain": "a.example", "config": {"freeze_windows": [BAD_ZONE]}}
        )
    assert str(caught.value).startswith(
        "config.freeze_windows[0].timezone: unknown time zone 'Mars/Olympus'"
    )
    assert caught.value.errors == [
        {
            "loc": ["body", "config", "freeze_windows", 0, "timezone"],
            "msg": zone_problem("Mars/Olympus"),
        }
    ]


def test_limits_accept_only_known_keys_and_numbers() -> None:
    assert validation.validate_limits({"max_deployment_frequency": 3}).max_deployment_frequency == 3
    with pytest.raises(InvalidInput, match=r"limits\.max_deploys"):
        validation.validate_limits({"max_deploys": 3})
    with pytest.raises(InvalidInput, match=r"limits\.storage_quota_gb"):
        validation.validate_limits({"storage_quota_gb": -1})


# --- every write path -------------------------------------------------------------------------


def _stored_config(admin: Any, name: str = "staging") -> dict[str, Any]:
    return dict(admin.get(f"/api/v1/environments/{name}").json()["config"])


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"freeze_windows": [BAD_ZONE]}, ["config", "freeze_windows", 0, "timezone"]),
        (
            {"freeze_windows": [{"cron": "0 0 30 2 *", "duration_minutes": 5}]},
            ["config", "freeze_windows", 0, "cron"],
        ),
        (
            {"freeze_windows": [{"cron": "bad", "duration_minutes": 5}]},
            ["config", "freeze_windows", 0, "cron"],
        ),
        (
            {"freeze_windows": [{"cron": "0 3 * * *", "duration_minutes": -5}]},
            ["config", "freeze_windows", 0, "duration_minutes"],
        ),
        (
            {"pipeline": {"steps": [{"name": "ship", "stage": "ship", "run": "true"}]}},
            ["config", "pipeline", "steps", 0, "stage"],
        ),
        (
            {
                "pipeline": {
                    "steps": [{"name": "a", "stage": "build", "run": "true"}],
                    "healthcheck": {"url": "http://app/", "expect_status": 700},
                }
            },
            ["config", "pipeline", "healthcheck", "expect_status"],
        ),
        (
            {"monitoring": {"scrape": [{"url": "http://app:9100/m", "labels": {"a-b": "x"}}]}},
            ["config", "monitoring", "scrape", 0, "labels", "a-b", "[key]"],
        ),
        (
            {
                "reports": [
                    {
                        "kind": "dora",
                        "cron": "0 9 * * 1",
                        "timezone": "Nowhere/Land",
                        "channels": ["c"],
                    }
                ]
            },
            ["config", "reports", 0, "timezone"],
        ),
        (
            {"security": {"schedule": [{"type": "sast", "target": "/srv", "cron": "0 0 31 4 *"}]}},
            ["config", "security", "schedule", 0, "cron"],
        ),
        # Alertmanager matchers: a regex RE2 cannot match in linear time (a backreference)…
        (
            {"external_alert_matchers": [{"label": "c", "op": "=~", "value": "(a)\\1"}]},
            ["config", "external_alert_matchers", 0],
        ),
        (
            {"external_alert_matchers": [{"label": "c", "op": "=~", "value": "stg-("}]},
            ["config", "external_alert_matchers", 0],
        ),
        (
            {"external_alert_matchers": [{"label": "c", "op": "==", "value": "x"}]},
            ["config", "external_alert_matchers", 0, "op"],
        ),
        (
            {"external_alert_matchers": [{"label": "not-a-label", "value": "x"}]},
            ["config", "external_alert_matchers", 0, "label"],
        ),
        # …none at all, or only ones an alert without the labels meets, would claim every alert.
        ({"external_alert_matchers": []}, ["config", "external_alert_matchers"]),
        (
            {
                "external_alert_matchers": [
                    {"label": "cluster", "value": ""},
                    {"label": "team", "op": "=~", "value": ".*"},
                    {"label": "env", "op": "!=", "value": "prod"},
                ]
            },
            ["config", "external_alert_matchers"],
        ),
    ],
)
def test_patch_with_bad_config_is_422_naming_the_path_and_changes_nothing(
    clients: Clients, config: dict[str, Any], path: list[Any]
) -> None:
    with clients.as_role("admin") as admin:
        before = _stored_config(admin)
        body = assert_problem(
            admin.patch("/api/v1/environments/staging", json={"config": config}), 422
        )
        assert _stored_config(admin) == before
    errors = body["errors"]
    assert isinstance(errors, list)
    assert ["body", *path] in [e["loc"] for e in errors]
    assert validation.format_loc(path) in str(body["detail"])


def test_put_with_a_bad_freeze_window_is_422_naming_the_path(clients: Clients) -> None:
    from tests.support.factories import FULL_CONFIG

    with clients.as_role("admin") as admin:
        before = _stored_config(admin)
        body = assert_problem(
            admin.put(
                "/api/v1/environments/staging",
                json={
                    "domain": "staging.example.org",
                    "config": {**FULL_CONFIG, "freeze_windows": [BAD_ZONE]},
                },
            ),
            422,
        )
        assert _stored_config(admin) == before
    assert "config.freeze_windows[0].timezone: unknown time zone 'Mars/Olympus'" in str(
        body["detail"]
    )


def test_env_set_with_a_bad_freeze_window_exits_2_naming_the_path(clients: Clients) -> None:
    env = {
        **os.environ,
        "SHIPBOARD_URL": clients.server.base_url,
        "SHIPBOARD_TOKEN": clients.tokens["admin"],
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shipboard",
            "env",
            "set",
            "staging",
            "--config",
            'freeze_windows=[{"cron": "0 3 * * *", "duration_minutes": 30, '
            '"timezone": "Mars/Olympus"}]',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "config.freeze_windows[0].timezone" in done.stderr
    assert "Mars/Olympus" in done.stderr


# --- defence in depth: configuration edited in the database -----------------------------------


def _write_raw(engine: Engine, name: str, **columns: Any) -> None:
    """Store JSON straight into the row, past every check (an older version, a hand edit)."""
    sets = ", ".join(f"{col} = :{col}" for col in columns)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            sets = ", ".join(f"{col} = CAST(:{col} AS jsonb)" for col in columns)
        conn.execute(
            sa.text(f"UPDATE environments SET {sets} WHERE name = :name"),
            {"name": name, **{k: json.dumps(v) for k, v in columns.items()}},
        )


@pytest.mark.parametrize(
    ("columns", "named"),
    [
        ({"config": {"freeze_windows": [BAD_ZONE]}}, "config.freeze_windows[0].timezone"),
        (
            {"config": {"freeze_windows": [{"cron": "0 0 30 2 *", "duration_minutes": 60}]}},
            "config.freeze_windows[0].cron",
        ),
        ({"config": {"freeze_windows": "weekends"}}, "config.freeze_windows"),
        ({"config": {"reports": 5}}, "config.reports"),
        ({"features": {"deploy_freeze": "maybe"}}, "features.deploy_freeze"),
        ({"limits": {"max_deployment_frequency": "lots"}}, "limits.max_deployment_frequency"),
        ({"config": ["not", "an", "object"]}, "config"),
    ],
)
def test_deploy_with_stored_bad_config_is_blocked_with_a_reason_not_500(
    clients: Clients, engine: Engine, columns: dict[str, Any], named: str
) -> None:
    _write_raw(engine, "staging", **columns)
    with clients.as_role("admin") as admin:
        body = assert_problem(admin.post("/api/v1/deployments", json=DEPLOY), 422)
        assert body["type"].endswith("gate-blocked")  # type: ignore[union-attr]
        reasons = " ".join(e["msg"] for e in body["errors"])  # type: ignore[union-attr]
        assert named in reasons
        assert "shipboard env set" in reasons
        # Listings and pages still answer.
        assert admin.get("/api/v1/environments").status_code == 200
        assert admin.get("/api/v1/environments/staging").status_code == 200
        assert admin.get("/api/v1/deployments").status_code == 200
    with signed_in(clients, engine, "admin") as browser:
        for page in ("/", "/environments", "/environments/staging", "/deployments"):
            response = browser.get(page)
            assert response.status_code == 200, (page, response.text[:500])


def test_deploy_with_a_stored_bad_pipeline_is_422_naming_the_step(
    clients: Clients, engine: Engine
) -> None:
    _write_raw(
        engine,
        "staging",
        config={"pipeline": {"steps": [{"name": "x", "stage": "ship", "run": "true"}]}},
    )
    with clients.as_role("admin") as admin:
        body = assert_problem(
            admin.post("/api/v1/deployments", json={**DEPLOY, "force": True}), 422
        )
    assert "config.pipeline.steps[0].stage" in str(body["detail"])


# --- shipboard config check -------------------------------------------------------------------


def _shipboard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_config_check_names_each_stored_problem_and_how_to_fix_it(
    clients: Clients, engine: Engine, db: Database
) -> None:
    env = {"SHIPBOARD_DATABASE_URL": db.url}
    clean = _shipboard("config", "check", env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "all stored configuration is valid" in clean.stdout

    with clients.as_role("admin") as admin:
        created = admin.post(
            "/api/v1/alert-rules",
            json={
                "name": "slow",
                "kind": "threshold",
                "environment": "staging",
                "metric": "latency_ms",
                "value": 500,
            },
        )
        assert created.status_code == 201, created.text
    _write_raw(
        engine,
        "staging",
        config={"freeze_windows": [BAD_ZONE], "notification_channels": ["nobody"]},
        limits={"max_deploys": 3},
    )
    with engine.begin() as conn:
        cast = "CAST(:spec AS jsonb)" if conn.dialect.name == "postgresql" else ":spec"
        conn.execute(
            sa.text(f"UPDATE alert_rules SET spec = {cast} WHERE name = 'slow'"),
            {"spec": '{"window_s": -5, "value": 500}'},
        )
    found = _shipboard("config", "check", env=env)
    assert found.returncode == 1, found.stdout + found.stderr
    text = found.stdout
    assert (
        "environment staging: config.freeze_windows[0].timezone: unknown time zone "
        "'Mars/Olympus'" in text
    )
    assert "fix: shipboard env set staging --config freeze_windows=JSON" in text
    assert "environment staging: config.notification_channels[0]: no channel named 'nobody'" in text
    assert "environment staging: limits.max_deploys" in text
    assert "--unset max_deploys" in text
    assert "alert_rule slow: window_s" in text
    as_json = _shipboard("config", "check", "--json", env=env)
    assert as_json.returncode == 1
    paths = {(p["kind"], p["path"]) for p in json.loads(as_json.stdout)["problems"]}
    assert ("environment", "config.freeze_windows[0].timezone") in paths


def test_background_readers_survive_stored_values_that_are_not_objects(
    clients: Clients, engine: Engine
) -> None:
    from shipboard.ops import retention

    _write_raw(engine, "staging", config=["x"], limits=["y"], features=["z"])
    report = retention.enforce(engine, dry_run=True)
    assert report.horizons["staging"] == {"metrics": 90, "logs": 365}
    with clients.as_role("admin") as admin:
        assert admin.get("/api/v1/security/findings").status_code == 200
        assert admin.get("/api/v1/environments/staging").status_code == 200
