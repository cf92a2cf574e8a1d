"""Environment writes: PUT, JSON Merge Patch, feature flags, validation that changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.support.factories import FULL_CONFIG
from tests.support.live import Clients
from tests.support.problems import assert_problem

FULL_LIMITS = {
    "max_concurrent_users": 1000,
    "api_rate_limit": 0,
    "storage_quota_gb": 50,
    "bandwidth_limit_gb": 500,
    "max_deployment_frequency": 6,
}


def test_put_replaces_and_keeps_unknown_config_keys(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        response = admin.put(
            "/api/v1/environments/staging",
            json={
                "domain": "staging.example.org",
                "config": FULL_CONFIG,
                "features": {"auto_rollback": True},
                "limits": FULL_LIMITS,
            },
        )
        assert response.status_code == 200, response.text
        env = admin.get("/api/v1/environments/staging").json()
    assert env["domain"] == "staging.example.org"
    assert env["config"]["pipeline"] == FULL_CONFIG["pipeline"]
    assert env["features"] == {"auto_rollback": True}
    assert env["limits"]["max_deployment_frequency"] == 6


def test_put_checks_config_against_the_spec_and_changes_nothing(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        before = admin.get("/api/v1/environments/staging").json()
        bad = {**FULL_CONFIG, "supabase_url": "not a url", "max_file_size_mb": -1}
        response = admin.put(
            "/api/v1/environments/staging", json={"domain": "x.example", "config": bad}
        )
        body = assert_problem(response, 422)
        locs = {tuple(e["loc"]) for e in body["errors"]}  # type: ignore[union-attr]
        assert ("body", "config", "supabase_url") in locs
        assert ("body", "config", "max_file_size_mb") in locs
        assert admin.get("/api/v1/environments/staging").json() == before


def test_merge_patch_changes_one_flag_and_null_removes(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/production",
            json={"features": {"auto_rollback": False, "deploy_freeze": False}},
        )
        env = admin.patch(
            "/api/v1/environments/production",
            json={"features": {"auto_rollback": True}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).json()
        assert env["features"] == {
            "require_staging_success": True,
            "block_on_critical_findings": True,
            "auto_rollback": True,
            "deploy_freeze": False,
        }
        env = admin.patch(
            "/api/v1/environments/production",
            json={"features": {"deploy_freeze": None}, "config": {"api_rate_limit": None}},
        ).json()
    assert "deploy_freeze" not in env["features"]
    assert "api_rate_limit" not in env["config"]
    assert env["config"]["max_file_size_mb"] == 50


def test_patch_that_breaks_validation_is_refused_and_changes_nothing(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        before = admin.get("/api/v1/environments/staging").json()
        for patch in (
            {"domain": None},
            {"domain": "not a domain!"},
            {"limits": {"max_concurrent_users": -3}},
            {"limits": {"bogus": 1}},
            {"features": {"auto_rollback": "yes"}},
            {"config": {"redis_url": "::nope::"}},
            {"color": "blue"},
        ):
            assert_problem(admin.patch("/api/v1/environments/staging", json=patch), 422)
        assert admin.get("/api/v1/environments/staging").json() == before


def test_feature_flag_route(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        env = admin.put(
            "/api/v1/environments/staging/features/deploy_freeze", json={"enabled": True}
        ).json()
        assert env["features"]["deploy_freeze"] is True
        assert_problem(
            admin.put("/api/v1/environments/staging/features/Bad-Flag", json={"enabled": True}),
            422,
        )
        assert_problem(
            admin.put("/api/v1/environments/staging/features/x", json={"enabled": "maybe"}), 422
        )
        assert_problem(admin.put("/api/v1/environments/qa/features/x", json={"enabled": True}), 404)


def test_malformed_json_is_400(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        response = admin.patch(
            "/api/v1/environments/staging",
            content=b'{"features": ',
            headers={"Content-Type": "application/json"},
        )
    assert_problem(response, 400)


def test_env_cli_shows_sets_and_toggles(clients: Clients) -> None:
    env = {
        "SHIPBOARD_URL": clients.server.base_url,
        "SHIPBOARD_TOKEN": clients.tokens["admin"],
        "PATH": "/usr/bin:/bin",
        # The code under test, not whatever copy is installed.
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shipboard", "env", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = run(
        "set", "staging", "--config", "max_file_size_mb=10", "--limit", "api_rate_limit=100"
    )
    assert result.returncode == 0, result.stderr
    result = run("feature", "staging", "auto_rollback", "on")
    assert result.returncode == 0, result.stderr
    shown = httpx.get(
        f"{clients.server.base_url}/api/v1/environments/staging",
        headers={"Authorization": f"Bearer {clients.tokens['viewer']}"},
    ).json()
    assert shown["config"]["max_file_size_mb"] == 10
    assert shown["limits"]["api_rate_limit"] == 100
    assert shown["features"]["auto_rollback"] is True

    result = run("set", "staging", "--limit", "api_rate_limit=-1")
    assert result.returncode == 2  # a bad value on the command line is a usage error
    assert "api_rate_limit" in result.stderr
    assert "Traceback" not in result.stderr

    env["SHIPBOARD_TOKEN"] = clients.tokens["viewer"]
    result = run("feature", "staging", "auto_rollback", "off")
    assert result.returncode == 3  # a 403
    assert "403" in result.stderr
