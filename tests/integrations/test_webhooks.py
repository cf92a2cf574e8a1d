"""GitHub and GitLab webhooks against a live server, with the real payloads of
``tests/fixtures/integrations/`` signed in the test with a known secret."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.live import Clients
from tests.support.problems import assert_problem
from tests.support.webhooks import (
    SECRET,
    configure_integration,
    post_github,
    sign_github,
    webhook_payload,
)

GH_SHA = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
GITLAB_SHA = "279484c09fbe69ededfced8c1bb6e6d24616b468"


def _variant(name: str, **changes: Any) -> bytes:
    """A copy of a fixture with dotted-path fields changed (the file itself stays as it is)."""
    payload = json.loads(webhook_payload(name))
    for path, value in changes.items():
        target = payload
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return json.dumps(payload).encode()


def _gitlab(
    clients: Clients, body: bytes, *, token: str | None = SECRET, event: str = "Deployment Hook"
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
    }
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return httpx.post(
        f"{clients.server.base_url}/api/v1/integrations/gitlab", content=body, headers=headers
    )


def _deployments(clients: Clients) -> list[dict[str, Any]]:
    with clients.as_role("viewer") as viewer:
        items: list[dict[str, Any]] = viewer.get("/api/v1/deployments").json()["items"]
    return items


def _detail(clients: Clients, deployment_id: str) -> dict[str, Any]:
    with clients.as_role("viewer") as viewer:
        return dict(viewer.get(f"/api/v1/deployments/{deployment_id}").json())


def _logs(clients: Clients, deployment_id: str) -> list[str]:
    with clients.as_role("viewer") as viewer:
        page = viewer.get(f"/api/v1/deployments/{deployment_id}/logs").json()
    return [line["message"] for line in page["items"]]


def _deliveries(clients: Clients, kind: str) -> list[dict[str, Any]]:
    with clients.as_role("admin") as admin:
        response = admin.get(f"/api/v1/integrations/{kind}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


# --- GitHub ---------------------------------------------------------------------------------


def test_github_deployment_then_status_records_environment_sha_status_and_creator(
    clients: Clients,
) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    created = post_github(
        clients, "deployment", webhook_payload("github/deployment.created.payload.json")
    )
    assert created.status_code == 200, created.text
    assert created.json()["outcome"] == "recorded"
    (deployment,) = _deployments(clients)
    assert deployment["environment"] == "production"
    assert deployment["commit_sha"] == GH_SHA
    assert deployment["status"] == "pending"
    assert deployment["triggered_by"] == "github:Codertocat"
    assert deployment["version"] == "master"
    assert deployment["created_at"].startswith("2019-05-15T15:20:53")

    status = post_github(
        clients,
        "deployment_status",
        webhook_payload("github/deployment_status.created.payload.json"),
    )
    assert status.status_code == 200, status.text
    assert status.json()["outcome"] == "updated"
    assert status.json()["deployment_id"] == deployment["id"]
    detail = _detail(clients, deployment["id"])
    assert detail["status"] == "success"
    assert detail["managed"] is False
    assert detail["completed_at"].startswith("2019-05-15T15:20:55")
    # Walked through the states Shipboard's own deployments go through, each with its line.
    assert [m for m in _logs(clients, deployment["id"]) if m.startswith("status ")] == [
        "status pending -> building (github)",
        "status building -> deploying (github)",
        "status deploying -> success (github)",
    ]


def test_production_deployment_past_a_failing_gate_is_flagged_and_audited(
    clients: Clients,
) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    body = webhook_payload("github/deployment_status.created.payload.json")
    answer = post_github(clients, "deployment_status", body)
    assert answer.status_code == 200, answer.text
    detail = _detail(clients, answer.json()["deployment_id"])
    # Not blocked: it already happened in GitHub.
    assert detail["status"] == "success"
    assert detail["gate_violations"] == ["require_staging_success"]
    gate = next(g for g in detail["gates"] if g["gate"] == "require_staging_success")
    assert gate["passed"] is False
    assert any("past failing gates" in m for m in _logs(clients, detail["id"]))
    with clients.as_role("admin") as admin:
        events = admin.get(
            "/api/v1/audit", params={"action": "deployment.gates_failed_external"}
        ).json()["items"]
    # The audit trail is append-only (never emptied between tests): look for this deployment.
    (event,) = [e for e in events if e["target_id"] == detail["id"]]
    assert event["actor"] == "github:Codertocat"


def test_redelivery_changes_nothing(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    body = webhook_payload("github/deployment_status.created.payload.json")
    first = post_github(clients, "deployment_status", body, delivery="d-1")
    assert first.json()["outcome"] == "recorded"
    deployment_id = first.json()["deployment_id"]
    before = (_detail(clients, deployment_id), _logs(clients, deployment_id))
    again = post_github(clients, "deployment_status", body, delivery="d-1")
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert len(_deployments(clients)) == 1
    assert (_detail(clients, deployment_id), _logs(clients, deployment_id)) == before
    assert [d["outcome"] for d in _deliveries(clients, "github")] == ["duplicate", "recorded"]


def test_success_before_in_progress_leaves_success(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    name = "github/deployment_status.created.payload.json"
    success = post_github(clients, "deployment_status", webhook_payload(name))
    deployment_id = success.json()["deployment_id"]
    late = post_github(
        clients, "deployment_status", _variant(name, deployment_status__state="in_progress")
    )
    assert late.status_code == 200, late.text
    assert late.json()["outcome"] == "unchanged"
    assert "never moves backwards" in late.json()["detail"]
    assert _detail(clients, deployment_id)["status"] == "success"
    # The deployment event itself, arriving last, changes nothing either.
    created = post_github(
        clients, "deployment", webhook_payload("github/deployment.created.payload.json")
    )
    assert created.json()["outcome"] == "unchanged"
    assert len(_deployments(clients)) == 1


def test_failure_state_fails_the_deployment_with_the_reason(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github", env_map={"production": "staging"})
    name = "github/deployment_status.created.payload.json"
    failed = post_github(
        clients,
        "deployment_status",
        _variant(name, deployment_status__state="error", deployment_status__description="boom"),
    )
    detail = _detail(clients, failed.json()["deployment_id"])
    assert (detail["environment"], detail["status"]) == ("staging", "failed")
    assert detail["error_message"] == "GitHub reported error: boom"
    # A later success does not resurrect a finished deployment.
    late = post_github(clients, "deployment_status", webhook_payload(name))
    assert late.json()["outcome"] == "unchanged"
    assert _detail(clients, detail["id"])["status"] == "failed"


def test_unknown_environment_is_accepted_and_ignored_until_mapped(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    body = webhook_payload("github/deployment_status.created.gh-pages.payload.json")
    ignored = post_github(clients, "deployment_status", body)
    assert ignored.status_code == 202
    assert ignored.json()["outcome"] == "ignored"
    assert "'github-pages'" in ignored.json()["detail"]
    assert _deployments(clients) == []

    with clients.as_role("admin") as admin:
        configure_integration(admin, "github", env_map={"github-pages": "staging"})
    mapped = post_github(clients, "deployment_status", body)
    assert mapped.status_code == 200, mapped.text
    detail = _detail(clients, mapped.json()["deployment_id"])
    assert detail["environment"] == "staging"
    assert detail["status"] == "deploying"
    assert detail["triggered_by"] == "github:github-pages[bot]"
    assert (
        detail["logs_url"]
        == "https://github.com/CorsixTH/CorsixTH/runs/4687056418?check_suite_focus=true"
    )
    assert detail["gate_violations"] == []


def test_bad_and_missing_signatures_are_401_and_store_nothing(clients: Clients) -> None:
    body = webhook_payload("github/deployment.created.payload.json")
    unconfigured = post_github(clients, "deployment", body)
    assert_problem(unconfigured, 401)
    assert "no github integration" in unconfigured.json()["detail"]
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    missing = post_github(clients, "deployment", body, signature=None)
    assert_problem(missing, 401)
    assert "missing" in missing.json()["detail"]
    wrong = post_github(clients, "deployment", body, signature=sign_github(body, "another secret"))
    assert_problem(wrong, 401)
    # Signed, but not over these bytes: one byte more is another body.
    tampered = post_github(clients, "deployment", body + b" ", signature=sign_github(body))
    assert_problem(tampered, 401)
    assert _deployments(clients) == []
    rejected = _deliveries(clients, "github")
    assert [d["outcome"] for d in rejected] == ["rejected"] * 4
    assert all(d["deployment_id"] is None and d["status_code"] == 401 for d in rejected)


def test_signed_but_malformed_bodies_are_clear_client_errors(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    not_json = post_github(clients, "deployment", b"{not json")
    assert_problem(not_json, 400)
    no_deployment = post_github(clients, "deployment", b'{"action": "created"}')
    assert_problem(no_deployment, 422)
    assert "deployment" in no_deployment.json()["detail"]
    bad_sha = post_github(
        clients,
        "deployment",
        _variant("github/deployment.created.payload.json", deployment__sha="not-a-sha"),
    )
    assert_problem(bad_sha, 422)
    assert _deployments(clients) == []
    assert {d["outcome"] for d in _deliveries(clients, "github")} == {"invalid"}


def test_workflow_run_completed_records_a_deployment_when_its_name_matches(
    clients: Clients,
) -> None:
    body = webhook_payload("github/workflow_run.completed.payload.json")
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    # The fixture's workflow is called "test": not a deploy workflow by the default pattern.
    skipped = post_github(clients, "workflow_run", body)
    assert skipped.status_code == 202
    assert "'*deploy*'" in skipped.json()["detail"]
    with clients.as_role("admin") as admin:
        configure_integration(
            admin, "github", deploy_workflow="te?t", workflow_environment="staging"
        )
    recorded = post_github(clients, "workflow_run", body)
    assert recorded.status_code == 200, recorded.text
    detail = _detail(clients, recorded.json()["deployment_id"])
    assert detail["environment"] == "staging"
    assert detail["commit_sha"] == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    assert detail["status"] == "success"
    assert detail["triggered_by"] == "github:Codertocat"
    assert detail["logs_url"] == "https://github.com/octo-org/octo-repo/actions/runs/289782451"
    assert detail["commit_timestamp"].startswith("2020-10-05T16:32:07")

    failed = post_github(
        clients,
        "workflow_run",
        _variant(
            "github/workflow_run.completed.payload.json",
            workflow_run__conclusion="failure",
            workflow_run__run_attempt=2,
        ),
    )
    rerun = _detail(clients, failed.json()["deployment_id"])
    assert rerun["id"] != detail["id"]
    assert rerun["status"] == "failed"
    assert "concluded failure" in rerun["error_message"]


def test_other_github_events_are_ignored_and_ping_confirms_the_secret(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    review = post_github(
        clients,
        "deployment_review",
        webhook_payload("github/deployment_review.requested.payload.json"),
    )
    assert review.status_code == 202
    assert review.json()["outcome"] == "ignored"
    ping = post_github(clients, "ping", b'{"zen": "Keep it logically awesome."}')
    assert ping.status_code == 200
    assert ping.json()["outcome"] == "ping"
    assert _deployments(clients) == []


# --- GitLab ---------------------------------------------------------------------------------


def test_gitlab_deployment_hook_records_environment_sha_status_and_user(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "gitlab")
    answer = _gitlab(clients, webhook_payload("gitlab/deployment.success.gitlab-docs.json"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "recorded"
    detail = _detail(clients, answer.json()["deployment_id"])
    assert detail["environment"] == "staging"
    assert detail["commit_sha"] == GITLAB_SHA
    assert detail["status"] == "success"
    assert detail["triggered_by"] == "gitlab:root"
    assert detail["version"] == "279484c0"
    assert detail["logs_url"] == "http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796"
    assert detail["completed_at"].startswith("2021-04-28T19:50:00")


def test_gitlab_running_then_canceled_fails_with_the_reason(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "gitlab")
    name = "gitlab/deployment.success.go-gitlab.json"
    running = _gitlab(clients, _variant(name, status="running"))
    detail = _detail(clients, running.json()["deployment_id"])
    assert (detail["status"], detail["version"], detail["triggered_by"]) == (
        "deploying",
        "1.0.0",
        "gitlab:user1",
    )
    canceled = _gitlab(clients, _variant(name, status="canceled"))
    assert canceled.json()["outcome"] == "updated"
    detail = _detail(clients, detail["id"])
    assert detail["status"] == "failed"
    assert detail["error_message"] == "canceled in GitLab"
    # The redelivered success of the same deployment id (a new delivery) cannot undo that.
    assert _gitlab(clients, webhook_payload(name)).json()["outcome"] == "unchanged"


def test_gitlab_token_is_required_and_other_hooks_are_ignored(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "gitlab")
    body = webhook_payload("gitlab/deployment.success.gitlab-docs.json")
    assert_problem(_gitlab(clients, body, token=None), 401)
    assert_problem(_gitlab(clients, body, token="guess"), 401)
    assert _deployments(clients) == []
    pipeline = _gitlab(
        clients, webhook_payload("gitlab/pipeline.go-gitlab.json"), event="Pipeline Hook"
    )
    assert pipeline.status_code == 202
    assert "Deployment Hook" in pipeline.json()["detail"]
    assert _deployments(clients) == []


# --- configuration --------------------------------------------------------------------------


def test_integration_config_is_admin_only_and_never_shows_the_secret(
    clients: Clients, engine: Engine
) -> None:
    started = datetime.now(UTC).isoformat()
    with clients.as_role("admin") as admin:
        missing_secret = admin.put("/api/v1/integrations/github", json={})
        assert_problem(missing_secret, 422)
        read = configure_integration(admin, "github", env_map={"prod": "production"})
        assert read["env_map"] == {"prod": "production"}
        assert read["webhook_path"] == "/api/v1/integrations/github"
        # Changing the map keeps the secret when none is given.
        kept = admin.put("/api/v1/integrations/github", json={"deploy_workflow": "Release*"})
        assert kept.status_code == 200, kept.text
        listed = admin.get("/api/v1/integrations")
        bad_env = admin.put(
            "/api/v1/integrations/gitlab", json={"secret": "x", "env_map": {"a": "moon"}}
        )
        assert_problem(bad_env, 422)
        unknown_kind = admin.put("/api/v1/integrations/jenkins", json={"secret": "x"})
        assert_problem(unknown_kind, 422)
    assert SECRET not in listed.text
    assert [i["kind"] for i in listed.json()["items"]] == ["github"]
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT secret FROM integrations")).scalar_one()
    assert SECRET not in stored
    # The kept secret still verifies webhooks.
    ping = post_github(clients, "ping", b"{}")
    assert ping.status_code == 200, ping.text
    with clients.as_role("deployer") as deployer:
        assert_problem(deployer.get("/api/v1/integrations"), 403)
        assert_problem(deployer.get("/api/v1/integrations/github/deliveries"), 403)
    with clients.as_role("admin") as admin:
        assert admin.delete("/api/v1/integrations/github").status_code == 204
        assert_problem(admin.delete("/api/v1/integrations/github"), 404)
        audit = admin.get(
            "/api/v1/audit", params={"target_type": "integration", "since": started}
        ).json()
    assert_problem(post_github(clients, "ping", b"{}"), 401)
    assert [e["action"] for e in audit["items"]] == [
        "integration.delete",
        "integration.update",
        "integration.create",
    ]
    assert SECRET not in json.dumps(audit)


# --- issue 20: provider rules ---------------------------------------------------------------


def test_duplicate_delivery_answers_with_the_deployment_the_first_one_recorded(
    clients: Clients,
) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    body = webhook_payload("github/deployment_status.created.payload.json")
    first = post_github(clients, "deployment_status", body, delivery="dup-1")
    again = post_github(clients, "deployment_status", body, delivery="dup-1")
    assert again.json()["outcome"] == "duplicate"
    assert again.json()["deployment_id"] == first.json()["deployment_id"] is not None
    duplicate, _ = _deliveries(clients, "github")
    assert duplicate["deployment_id"] == first.json()["deployment_id"]


def test_github_form_encoded_payload_is_accepted_signed_over_the_raw_body(
    clients: Clients,
) -> None:
    from urllib.parse import urlencode

    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    # GitHub's default content type: `payload=<url-encoded JSON>`, signed over those bytes.
    body = urlencode(
        {"payload": webhook_payload("github/deployment.created.payload.json").decode()}
    ).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "deployment",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign_github(body),
    }
    url = f"{clients.server.base_url}/api/v1/integrations/github"
    answer = httpx.post(url, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "recorded"
    assert _detail(clients, answer.json()["deployment_id"])["commit_sha"] == GH_SHA
    # The signature is over the encoded bytes, not the JSON inside them.
    wrong = {
        **headers,
        "X-Hub-Signature-256": sign_github(
            webhook_payload("github/deployment.created.payload.json")
        ),
    }
    assert_problem(httpx.post(url, content=body, headers=wrong), 401)
    no_payload = urlencode({"other": "x"}).encode()
    missing = httpx.post(
        url,
        content=no_payload,
        headers={
            **headers,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign_github(no_payload),
        },
    )
    assert_problem(missing, 400)
    assert "payload" in missing.json()["detail"]
    assert len(_deployments(clients)) == 1


def test_same_deployment_id_from_two_repositories_is_two_deployments(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
        configure_integration(admin, "gitlab")
    name = "github/deployment_status.created.payload.json"
    ours = post_github(clients, "deployment_status", webhook_payload(name))
    other_repo = post_github(
        clients,
        "deployment_status",
        _variant(
            name,
            deployment_status__state="failure",
            repository__id=1,
            repository__full_name="someone/else",
            repository__html_url="https://github.com/someone/else",
        ),
    )
    other_host = post_github(
        clients,
        "deployment_status",
        _variant(
            name,
            deployment_status__state="failure",
            repository__html_url="https://github.example.com/Codertocat/Hello-World",
        ),
    )
    ids = {ours.json()["deployment_id"], other_repo.json()["deployment_id"]}
    ids.add(other_host.json()["deployment_id"])
    assert [r.json()["outcome"] for r in (ours, other_repo, other_host)] == ["recorded"] * 3
    assert len(ids) == 3
    assert _detail(clients, ours.json()["deployment_id"])["status"] == "success"
    # GitLab: project scopes the id the same way.
    gitlab = "gitlab/deployment.success.go-gitlab.json"
    first = _gitlab(clients, webhook_payload(gitlab))
    second = _gitlab(clients, _variant(gitlab, project__id=31, status="failed"))
    assert [first.json()["outcome"], second.json()["outcome"]] == ["recorded", "recorded"]
    assert first.json()["deployment_id"] != second.json()["deployment_id"]
    assert _detail(clients, first.json()["deployment_id"])["status"] == "success"
    keys = {d["external_id"] for d in _deliveries(clients, "gitlab")}
    assert keys == {
        "10.126.0.2:3000/projects/30/deployments/15",
        "10.126.0.2:3000/projects/31/deployments/15",
    }


def test_cancelled_workflow_run_and_canceled_gitlab_deployment_are_not_change_failures(
    clients: Clients,
) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(
            admin, "github", deploy_workflow="te?t", workflow_environment="production"
        )
        configure_integration(admin, "gitlab", env_map={"staging": "production"})
    run = "github/workflow_run.completed.payload.json"
    cancelled = post_github(
        clients, "workflow_run", _variant(run, workflow_run__conclusion="cancelled")
    )
    detail = _detail(clients, cancelled.json()["deployment_id"])
    assert detail["status"] == "failed"
    assert detail["error_message"].startswith("cancelled in GitHub")
    post_github(clients, "workflow_run", _variant(run, workflow_run__run_attempt=2))
    canceled = _gitlab(
        clients, _variant("gitlab/deployment.success.go-gitlab.json", status="canceled")
    )
    assert _detail(clients, canceled.json()["deployment_id"])["status"] == "failed"
    with clients.as_role("viewer") as viewer:
        report = viewer.get(
            "/api/v1/reports/dora",
            params={
                "environment": "production",
                "since": "2020-01-01T00:00:00Z",
                "until": "2022-01-01T00:00:00Z",
            },
        )
    assert report.status_code == 200, report.text
    cfr = report.json()["change_failure_rate"]
    # One success; the cancelled run and the canceled GitLab deployment are left out.
    assert (cfr["failed"], cfr["completed"], cfr["value"]) == (0, 1, 0.0)


def test_webhook_triggerers_are_namespaced_apart_from_local_users(
    clients: Clients, make_user: Callable[[str, str], str]
) -> None:
    """A deployment GitHub or GitLab reported is triggered by ``github:<login>`` /
    ``gitlab:<username>``: a local account named like the login (user names cannot contain
    ``:``) is not its triggerer and may not report its status."""
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
        configure_integration(admin, "gitlab")
    assert (
        post_github(
            clients, "deployment", webhook_payload("github/deployment.created.payload.json")
        ).json()["outcome"]
        == "recorded"
    )
    assert (
        _gitlab(clients, webhook_payload("gitlab/deployment.success.gitlab-docs.json")).json()[
            "outcome"
        ]
        == "recorded"
    )
    by = {d["triggered_by"]: d["id"] for d in _deployments(clients)}
    assert set(by) == {"github:Codertocat", "gitlab:root"}
    for provider, login in (("github", "Codertocat"), ("gitlab", "root")):
        token = make_user(login, "service")
        deployment = by[f"{provider}:{login}"]
        refused = httpx.post(
            f"{clients.server.base_url}/api/v1/deployments/{deployment}/status",
            json={"status": "failed", "error_message": "spoofed"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert_problem(refused, 403)
        assert _detail(clients, deployment)["status"] != "failed"


def test_a_deployment_recorded_before_ids_were_scoped_goes_on_after_the_upgrade(
    clients: Clients, engine: Engine
) -> None:
    with clients.as_role("admin") as admin:
        configure_integration(admin, "github")
    created = post_github(
        clients, "deployment", webhook_payload("github/deployment.created.payload.json")
    )
    deployment_id = created.json()["deployment_id"]
    # As an older Shipboard stored it: the bare deployment id.
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE integration_deployments SET external_id = '145988746'"),
        )
    # Another repository's deployment 145988746, of another commit, does not take it over.
    other = post_github(
        clients,
        "deployment_status",
        _variant(
            "github/deployment_status.created.payload.json",
            repository__id=1,
            repository__html_url="https://github.com/someone/else",
            deployment__sha="0" * 40,
        ),
    )
    assert other.json()["outcome"] == "recorded"
    assert other.json()["deployment_id"] != deployment_id
    status = post_github(
        clients,
        "deployment_status",
        webhook_payload("github/deployment_status.created.payload.json"),
    )
    assert status.json()["outcome"] == "updated", status.text
    assert status.json()["deployment_id"] == deployment_id
    assert _detail(clients, deployment_id)["status"] == "success"
    with engine.connect() as conn:
        keys = set(conn.scalars(sa.text("SELECT external_id FROM integration_deployments")))
    assert "145988746" not in keys
    assert "github.com/repositories/186853002/deployments/145988746" in keys
