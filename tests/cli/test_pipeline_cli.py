"""The CLI as a CI pipeline uses it, against a live server in a subprocess: exit codes, --json,
report-status, metrics push NAME=VALUE, integrations, and a server that is down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from tests.support.factories import pipeline_steps, set_pipeline
from tests.support.live import Clients

SECRET = "pipeline-secret"


def _cli(
    clients: Clients | None,
    role: str | None,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("SHIPBOARD_")}
    if clients is not None:
        variables["SHIPBOARD_URL"] = clients.server.base_url
    if clients is not None and role is not None:
        variables["SHIPBOARD_TOKEN"] = clients.tokens[role]
    variables.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        input=stdin,
        env=variables,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _deploy(clients: Clients, role: str, environment: str, version: str, *extra: str) -> Any:
    return _cli(
        clients, role, "deploy", environment, "--version", version, "--commit", "abcdef1", *extra
    )


def test_deploy_wait_json_exits_0_on_success_and_1_on_failure(
    clients: Clients, worker: Any
) -> None:
    with clients.as_role("admin") as admin:
        set_pipeline(admin, "staging", pipeline_steps(("ship", "deploy", "echo shipped")))
    ok = _deploy(clients, "deployer", "staging", "2.0.0", "--wait", "--json")
    assert ok.returncode == 0, ok.stderr
    # Standard output is one JSON document: the finished deployment. The log went to stderr.
    final = json.loads(ok.stdout)
    assert (final["status"], final["version"]) == ("success", "2.0.0")
    assert "shipped" in ok.stderr

    with clients.as_role("admin") as admin:
        set_pipeline(admin, "staging", pipeline_steps(("ship", "deploy", "exit 9")))
    bad = _deploy(clients, "deployer", "staging", "2.0.1", "--wait", "--json")
    assert bad.returncode == 1
    failed = json.loads(bad.stdout)
    assert failed["status"] == "failed"
    assert "exited with code 9" in failed["error_message"]


def test_reported_deployment_with_report_status_and_wait(clients: Clients) -> None:
    created = _deploy(clients, "service", "development", "3.1.0", "--json")
    assert created.returncode == 0, created.stderr
    deployment = json.loads(created.stdout)
    assert deployment["managed"] is False
    # A pipeline that deploys itself waits in one job while another reports.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPBOARD_")}
    env |= {"SHIPBOARD_URL": clients.server.base_url, "SHIPBOARD_TOKEN": clients.tokens["service"]}
    waiting = subprocess.Popen(
        [sys.executable, "-m", "shipboard", "logs", deployment["id"], "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for status in ("building", "deploying"):
            step = _cli(clients, "service", "report-status", deployment["id"], status)
            assert step.returncode == 0, step.stderr
        done = _cli(
            clients,
            "service",
            "report-status",
            deployment["id"],
            "failed",
            "--error",
            "smoke test failed",
            "--json",
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["error_message"] == "smoke test failed"
        stdout, _ = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 1
    assert "deployment failed" in stdout
    backwards = _cli(clients, "service", "report-status", deployment["id"], "deploying")
    assert backwards.returncode == 1
    assert "allowed" in backwards.stderr
    nonsense = _cli(clients, "service", "report-status", deployment["id"], "done")
    assert nonsense.returncode == 2
    assert "status" in nonsense.stderr


def test_exit_codes_for_gates_usage_and_auth(clients: Clients) -> None:
    blocked = _deploy(clients, "deployer", "production", "9.9.9", "--json")
    assert blocked.returncode == 1
    assert "require_staging_success" in blocked.stderr
    bad_sha = _cli(
        clients, "deployer", "deploy", "staging", "--version", "1.0.0", "--commit", "xyz"
    )
    assert bad_sha.returncode == 2
    assert "commit_sha" in bad_sha.stderr
    missing_option = _cli(clients, "deployer", "deploy", "staging")
    assert missing_option.returncode == 2
    no_token = _cli(clients, None, "status")
    assert no_token.returncode == 3
    assert "SHIPBOARD_TOKEN" in no_token.stderr
    wrong_token = _cli(clients, None, "status", env={"SHIPBOARD_TOKEN": "shp_wrong"})
    assert wrong_token.returncode == 3
    viewer = _deploy(clients, "viewer", "staging", "1.0.0")
    assert viewer.returncode == 3
    assert "403" in viewer.stderr


def test_global_url_and_token_options(clients: Clients) -> None:
    result = _cli(
        None,
        None,
        "--url",
        clients.server.base_url,
        "--token",
        clients.tokens["viewer"],
        "status",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert [row["environment"] for row in json.loads(result.stdout)] == [
        "development",
        "staging",
        "production",
    ]


def test_a_server_that_is_down_exits_4_with_a_clear_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    result = _cli(
        None,
        None,
        "status",
        env={
            "SHIPBOARD_URL": f"http://127.0.0.1:{port}",
            "SHIPBOARD_TOKEN": "shp_x",
            "SHIPBOARD_RETRIES": "2",
        },
    )
    assert result.returncode == 4
    assert f"cannot reach Shipboard at http://127.0.0.1:{port}" in result.stderr
    assert "after 3 attempts" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


def test_metrics_push_name_value_pairs(clients: Clients) -> None:
    pushed = _cli(
        clients,
        "service",
        "metrics",
        "push",
        "--env",
        "staging",
        "http_p95_ms=231.5",
        "error_rate=0.01",
        "--tag",
        "region=eu",
        "--json",
    )
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout) == {"accepted": 2}
    with clients.as_role("viewer") as viewer:
        names = viewer.get("/api/v1/metrics/names", params={"environment": "staging"}).json()
    assert {"http_p95_ms", "error_rate"} <= {n["name"] for n in names["items"]}
    bad = _cli(clients, "service", "metrics", "push", "--env", "staging", "latency=fast")
    assert bad.returncode == 2
    assert "NAME=NUMBER" in bad.stderr


def test_integrations_add_list_and_deliveries(clients: Clients) -> None:
    added = _cli(
        clients,
        "admin",
        "integrations",
        "add",
        "github",
        "--secret-stdin",
        "--env-map",
        "github-pages=staging",
        "--env-map",
        "prod=production",
        "--deploy-workflow",
        "Release *",
        stdin=SECRET + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert f"{clients.server.base_url}/api/v1/integrations/github" in added.stdout
    assert SECRET not in added.stdout
    generated = _cli(clients, "admin", "integrations", "add", "gitlab", "--json")
    assert generated.returncode == 0, generated.stderr
    token = json.loads(generated.stdout)["generated_secret"]
    assert len(token) >= 32

    listed = _cli(clients, "admin", "integrations", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert SECRET not in listed.stdout
    assert token not in listed.stdout
    items = {i["kind"]: i for i in json.loads(listed.stdout)["items"]}
    assert items["github"]["env_map"] == {"github-pages": "staging", "prod": "production"}
    assert items["github"]["deploy_workflow"] == "Release *"
    table = _cli(clients, "admin", "integrations", "list", env={"COLUMNS": "200"})
    assert "github-pages=staging" in table.stdout
    assert SECRET not in table.stdout

    deliveries = _cli(clients, "admin", "integrations", "deliveries", "github", "--json")
    assert deliveries.returncode == 0, deliveries.stderr
    assert json.loads(deliveries.stdout)["items"] == []
    refused = _cli(clients, "deployer", "integrations", "list")
    assert refused.returncode == 3
    wrong_kind = _cli(clients, "admin", "integrations", "add", "jenkins", "--secret-stdin")
    assert wrong_kind.returncode == 2
    bad_map = _cli(clients, "admin", "integrations", "add", "github", "--env-map", "nothing")
    assert bad_map.returncode == 2
    removed = _cli(clients, "admin", "integrations", "remove", "gitlab")
    assert removed.returncode == 0, removed.stderr
