"""`shipboard deploy --wait`, `logs`, `approve`, `rollback`, `cancel` as a CI job would use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.conftest import Clients
from tests.test_pipelines import _set_pipeline, _steps


def _cli(
    clients: Clients, role: str, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SHIPBOARD_URL": clients.server.base_url,
        "SHIPBOARD_TOKEN": token or clients.tokens[role],
    }
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_deploy_wait_streams_lines_and_exits_by_outcome(clients: Clients, worker: Any) -> None:
    with clients.as_role("admin") as admin:
        _set_pipeline(
            admin, "staging", _steps(("ship", "deploy", 'echo "shipping $SHIPBOARD_VERSION"'))
        )
    ok = _cli(
        clients,
        "deployer",
        "deploy",
        "staging",
        "--version",
        "1.2.3",
        "--commit",
        "abcdef1",
        "--wait",
    )
    assert ok.returncode == 0, ok.stderr
    assert "shipping 1.2.3" in ok.stdout
    assert "deployment success" in ok.stdout

    with clients.as_role("admin") as admin:
        _set_pipeline(admin, "staging", _steps(("ship", "deploy", "echo broken >&2; exit 7")))
    bad = _cli(
        clients,
        "deployer",
        "deploy",
        "staging",
        "--version",
        "1.2.4",
        "--commit",
        "abcdef1",
        "--wait",
    )
    assert bad.returncode == 1
    assert "exited with code 7" in bad.stdout
    assert "deployment failed" in bad.stdout


def test_deploy_json_logs_and_blocked_gate_message(clients: Clients) -> None:
    created = _cli(
        clients,
        "deployer",
        "deploy",
        "development",
        "--version",
        "9.9.9",
        "--commit",
        "abcdef1",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    did = json.loads(created.stdout)["id"]
    logs = _cli(clients, "viewer", "logs", did)
    assert "created by deployer-user" in logs.stdout
    blocked = _cli(
        clients, "deployer", "deploy", "production", "--version", "9.9.9", "--commit", "abcdef1"
    )
    assert blocked.returncode == 1
    assert "require_staging_success" in blocked.stderr
    assert "Traceback" not in blocked.stderr


def test_approve_cancel_and_rollback_commands(clients: Clients, make_user: Any) -> None:
    with clients.as_role("admin") as admin:
        admin.put(
            "/api/v1/environments/development/features/require_approval", json={"enabled": True}
        )
    did = json.loads(
        _cli(
            clients,
            "deployer",
            "deploy",
            "development",
            "--version",
            "1.0.0",
            "--commit",
            "abcdef1",
            "--json",
        ).stdout
    )["id"]
    own = _cli(clients, "deployer", "approve", did)
    assert own.returncode == 3  # a 403: the exit code for authentication and permission
    assert "another deployer" in own.stderr
    approver = make_user("cli-approver", "deployer")
    assert _cli(clients, "deployer", "approve", did, token=approver).returncode == 0
    cancelled = _cli(clients, "deployer", "cancel", did)
    assert cancelled.returncode == 0, cancelled.stderr
    nothing = _cli(clients, "deployer", "rollback", "--env", "development")
    assert nothing.returncode == 1
    assert "no successful deployment" in nothing.stderr
    neither = _cli(clients, "deployer", "rollback")
    assert neither.returncode == 2  # usage: nothing was sent
    assert "either a deployment ID or --env" in neither.stderr
