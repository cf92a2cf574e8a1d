"""Who may roll back what: only the serving deployment, through approval and freezes.

A rollback redeploys an older version. Without these rules it was a way around approval and
freezes (issue 18, item 6): roll back "from" any old deployment and the version before it ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.factories import pipeline_steps, set_pipeline, start_deployment, wait_final
from tests.support.live import Clients, wait_for
from tests.support.problems import assert_problem


def _report(client: httpx.Client, version: str, env: str = "development") -> str:
    """A reported deployment of ``version`` that reaches success."""
    created = client.post(
        "/api/v1/deployments",
        json={"environment": env, "version": version, "commit_sha": "abcdef1"},
    )
    assert created.status_code == 201, created.text
    did = str(created.json()["id"])
    _advance(client, did)
    return did


def _advance(client: httpx.Client, did: str) -> None:
    for status in ("building", "deploying", "success"):
        response = client.post(f"/api/v1/deployments/{did}/status", json={"status": status})
        assert response.status_code == 200, response.text


def _feature(clients: Clients, name: str, enabled: bool, env: str = "development") -> None:
    with clients.as_role("admin") as admin:
        response = admin.put(
            f"/api/v1/environments/{env}/features/{name}", json={"enabled": enabled}
        )
        assert response.status_code == 200, response.text


def _count(client: httpx.Client, env: str = "development") -> int:
    items = client.get("/api/v1/deployments", params={"environment": env, "limit": 500})
    return len(items.json()["items"])


def _audit_actions(client: httpx.Client) -> list[str]:
    items = client.get("/api/v1/audit", params={"limit": 500}).json()["items"]
    return [item["action"] for item in items]


def test_rolling_back_a_deployment_that_is_not_serving_is_refused(clients: Clients) -> None:
    with clients.as_role("deployer") as deployer:
        v1 = _report(deployer, "1.0.0")
        v2 = _report(deployer, "2.0.0")
        _report(deployer, "3.0.0")
        before = _count(deployer)
        # Rolling back "from" 2.0.0 would put 1.0.0 in production with no gate at all.
        body = assert_problem(deployer.post(f"/api/v1/deployments/{v2}/rollback"), 409)
        assert "not the one serving" in str(body["detail"])
        assert_problem(deployer.post(f"/api/v1/deployments/{v1}/rollback"), 409)
        assert _count(deployer) == before
        assert deployer.get(f"/api/v1/deployments/{v2}").json()["status"] == "success"
        # What serves (3.0.0) can still be rolled back, to 2.0.0.
        back = deployer.post("/api/v1/environments/development/rollback")
        assert back.status_code == 201, back.text
        assert back.json()["version"] == "2.0.0"


def test_a_failed_deploy_is_what_serves_and_can_be_rolled_back(clients: Clients) -> None:
    with clients.as_role("deployer") as deployer:
        good = _report(deployer, "1.0.0")
        bad = deployer.post(
            "/api/v1/deployments",
            json={"environment": "development", "version": "2.0.0", "commit_sha": "abcdef1"},
        ).json()["id"]
        for status in ("building", "deploying", "failed"):
            deployer.post(f"/api/v1/deployments/{bad}/status", json={"status": status})
        # The failed deploy left the environment in its state: it is the one to roll back, and
        # the environment's rollback picks it (not the older success).
        assert_problem(deployer.post(f"/api/v1/deployments/{good}/rollback"), 409)
        back = deployer.post("/api/v1/environments/development/rollback")
        assert back.status_code == 201, back.text
        assert (back.json()["rollback_from"], back.json()["version"]) == (bad, "1.0.0")


def test_manual_rollback_waits_for_approval_where_approval_is_required(
    clients: Clients, make_user: Any
) -> None:
    approver = make_user("rollback-approver", "deployer")
    with clients.as_role("deployer") as deployer:
        _report(deployer, "1.0.0")
        v2 = _report(deployer, "2.0.0")
    _feature(clients, "require_approval", True)
    with clients.as_role("deployer") as deployer:
        created = deployer.post(f"/api/v1/deployments/{v2}/rollback")
        assert created.status_code == 201, created.text
        rollback = created.json()
        assert rollback["approval"]["required"] is True
        assert rollback["approval"]["approved_by"] is None
        waiting = deployer.post(
            f"/api/v1/deployments/{rollback['id']}/status", json={"status": "building"}
        )
        assert_problem(waiting, 409)
        # The one who asked for it cannot approve it either.
        assert_problem(deployer.post(f"/api/v1/deployments/{rollback['id']}/approve"), 403)
    with httpx.Client(
        base_url=clients.server.base_url, headers={"Authorization": f"Bearer {approver}"}
    ) as other:
        approved = other.post(f"/api/v1/deployments/{rollback['id']}/approve")
        assert approved.status_code == 200, approved.text
    with clients.as_role("deployer") as deployer:
        _advance(deployer, rollback["id"])
        assert deployer.get(f"/api/v1/deployments/{v2}").json()["status"] == "rolled_back"


def test_manual_rollback_respects_freezes_unless_an_admin_forces_it(clients: Clients) -> None:
    with clients.as_role("deployer") as deployer:
        _report(deployer, "1.0.0")
        v2 = _report(deployer, "2.0.0")
    _feature(clients, "deploy_freeze", True)
    _feature(clients, "require_approval", True)
    with clients.as_role("deployer") as deployer:
        before = _count(deployer)
        blocked = assert_problem(deployer.post(f"/api/v1/deployments/{v2}/rollback"), 422)
        assert "deploy_freeze" in str(blocked["detail"])
        refused = deployer.post(f"/api/v1/deployments/{v2}/rollback", json={"force": True})
        assert_problem(refused, 403)
        assert_problem(
            deployer.post("/api/v1/environments/development/rollback", json={"force": True}), 403
        )
        assert _count(deployer) == before
    with clients.as_role("admin") as admin:
        bad = admin.post(f"/api/v1/deployments/{v2}/rollback", json={"force": "yes please"})
        assert_problem(bad, 422)
        forced = admin.post(f"/api/v1/deployments/{v2}/rollback", json={"force": True})
        assert forced.status_code == 201, forced.text
        detail = forced.json()
        # Forced: past the freeze and without waiting for approval, and audited as such.
        assert (detail["forced"], detail["approval"]["required"]) == (True, False)
        assert detail["version"] == "1.0.0"
        assert "deployment.rollback_forced" in _audit_actions(admin)


def test_automatic_rollback_skips_approval_and_freezes(
    clients: Clients, worker: Any, make_user: Any, tmp_path: Path
) -> None:
    approver = make_user("auto-approver", "deployer")
    marker = tmp_path / "current"
    # 2.0.0 fails its verification after its deploy step ran: the worker rolls back.
    pipeline = pipeline_steps(
        ("ship", "deploy", f"echo $SHIPBOARD_VERSION > {marker}"),
        ("check", "verify", 'test "$SHIPBOARD_VERSION" != 2.0.0'),
    )
    with clients.as_role("admin") as admin:
        set_pipeline(admin, "staging", pipeline, auto_rollback=True)
        good = start_deployment(admin, version="1.0.0")
        assert wait_final(admin, good)["status"] == "success"
    _feature(clients, "require_approval", True, env="staging")
    with clients.as_role("deployer") as deployer:
        bad = start_deployment(deployer, version="2.0.0")
    with httpx.Client(
        base_url=clients.server.base_url, headers={"Authorization": f"Bearer {approver}"}
    ) as other:
        assert other.post(f"/api/v1/deployments/{bad}/approve").status_code == 200
    with clients.as_role("admin") as admin:
        wait_for(lambda: admin.get(f"/api/v1/deployments/{bad}").json()["status"] == "rolled_back")
        (rollback,) = [
            d
            for d in admin.get("/api/v1/deployments", params={"environment": "staging"}).json()[
                "items"
            ]
            if d["rollback_from"] == bad
        ]
        detail = admin.get(f"/api/v1/deployments/{rollback['id']}").json()
    assert detail["approval"]["required"] is False
    assert (detail["status"], detail["triggered_by"]) == ("success", "shipboard")
    assert wait_for(lambda: marker.read_text().strip() == "1.0.0")


def _cli(clients: Clients, role: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SHIPBOARD_URL": clients.server.base_url,
        "SHIPBOARD_TOKEN": clients.tokens[role],
    }
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_rollback_refuses_an_old_deployment_and_admins_force_past_a_freeze(
    clients: Clients,
) -> None:
    with clients.as_role("deployer") as deployer:
        v1 = _report(deployer, "1.0.0")
        v2 = _report(deployer, "2.0.0")
        _report(deployer, "3.0.0")
    old = _cli(clients, "deployer", "rollback", v2)
    assert old.returncode == 1, old.stderr
    assert "not the one serving" in old.stderr
    assert "Traceback" not in old.stderr
    _feature(clients, "deploy_freeze", True)
    frozen = _cli(clients, "deployer", "rollback", "--env", "development")
    assert frozen.returncode == 1
    assert "deploy_freeze" in frozen.stderr
    not_admin = _cli(clients, "deployer", "rollback", "--env", "development", "--force")
    assert not_admin.returncode == 3, not_admin.stderr
    forced = _cli(clients, "admin", "rollback", "--env", "development", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    created = json.loads(forced.stdout)
    assert (created["version"], created["forced"]) == ("2.0.0", True)
    assert v1


def test_the_deployment_page_offers_rollback_only_on_the_serving_deployment(
    clients: Clients, engine: Any
) -> None:
    from tests.support.web import browser, login, set_password

    with clients.as_role("deployer") as deployer:
        old = _report(deployer, "1.0.0")
        older = _report(deployer, "2.0.0")
        serving = _report(deployer, "3.0.0")
    set_password(engine, "deployer-user")
    with browser(clients.server) as page:
        login(page, "deployer-user")
        assert 'id="rollback"' in page.get(f"/deployments/{serving}").text
        for not_serving in (old, older):
            assert 'id="rollback"' not in page.get(f"/deployments/{not_serving}").text
