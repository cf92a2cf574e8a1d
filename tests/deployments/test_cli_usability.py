"""The deployment commands as a new user meets them: ids checked locally, `status` at 80
columns, and `deploy --wait` telling (and following) an automatic rollback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.support.factories import pipeline_steps, set_pipeline
from tests.support.live import Clients

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _cli(clients: Clients, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SHIPBOARD_URL": clients.server.base_url,
        "SHIPBOARD_TOKEN": clients.tokens["admin"],
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("logs", "notauuid"),
        ("logs", "notauuid", "--follow"),
        ("approve", "12345"),
        ("cancel", "x"),
        ("rollback", "not-an-id"),
        ("report-status", "nope", "success"),
    ],
)
def test_a_malformed_id_is_refused_locally_with_exit_2(args: tuple[str, ...]) -> None:
    # No server at this URL: a request would be exit 4, so exit 2 shows nothing was sent.
    done = subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env={**os.environ, "SHIPBOARD_URL": "http://127.0.0.1:9", "SHIPBOARD_TOKEN": "shp_x"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a deployment id" in done.stderr


def test_status_fits_80_columns_and_does_not_highlight_data(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        for env in ("production", "development"):
            created = client.post(
                "/api/v1/deployments",
                json={
                    "environment": env,
                    "version": "2026.12.03-release-candidate.1",
                    "commit_sha": "abcdef1234567",
                    "force": False,
                },
            )
            if created.status_code != 201:  # production's gates: staging first
                continue
            did = created.json()["id"]
            for status in ("building", "deploying", "success"):
                step = client.post(f"/api/v1/deployments/{did}/status", json={"status": status})
                assert step.status_code == 200, step.text
        completed = client.get("/api/v1/deployments", params={"environment": "development"})
    since = completed.json()["items"][0]["completed_at"][:16].replace("T", " ")
    done = _cli(clients, "status", COLUMNS="80", FORCE_COLOR="1", TERM="xterm-256color")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    plain = [ANSI.sub("", line) for line in lines]
    assert max(len(line) for line in plain) <= 80, "\n".join(plain)
    text = "\n".join(lines)
    for name in ("development", "staging", "production"):
        assert name in text  # whole, not "producti…"
    assert since in text  # the time whole and not split by highlighting
    assert "…" not in text


def test_deploy_wait_says_an_automatic_rollback_started_and_follows_it(
    clients: Clients, worker: Any
) -> None:
    # Version 2 fails verification; the rollback to version 1 runs the same pipeline and passes.
    pipeline = {
        "steps": [
            {"name": "ship", "stage": "deploy", "run": "true"},
            {"name": "check", "stage": "verify", "run": 'test "$SHIPBOARD_VERSION" != "2.0.0"'},
        ]
    }
    with clients.as_role("admin") as admin:
        set_pipeline(admin, "development", pipeline, auto_rollback=True)
    good = _cli(
        clients, "deploy", "development", "--version", "1.0.0", "--commit", "abcdef1", "--wait"
    )
    assert good.returncode == 0, good.stdout + good.stderr
    bad = _cli(
        clients, "deploy", "development", "--version", "2.0.0", "--commit", "abcdef2", "--wait"
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    out = bad.stdout
    assert "deployment failed" in out
    assert "automatic rollback started: deployment" in out
    assert "back to 1.0.0" in out
    # The CLI's own line, not the worker's log line of the same words that may stream first.
    assert out.index("\ndeployment failed\n") < out.index("\nautomatic rollback started:")
    assert "rollback success" in out
    assert "redeploying 1.0.0" in out  # the rollback's own log lines were followed


def test_deploy_wait_without_auto_rollback_ends_at_the_failure(
    clients: Clients, worker: Any
) -> None:
    with clients.as_role("admin") as admin:
        set_pipeline(admin, "development", pipeline_steps(("ship", "deploy", "exit 3")))
    bad = _cli(
        clients, "deploy", "development", "--version", "9.9.9", "--commit", "abcdef3", "--wait"
    )
    assert bad.returncode == 1
    assert "deployment failed" in bad.stdout
    assert "rollback" not in bad.stdout
