"""Approval judges a deployment's gates again (issue 23): a deployment that waits for approval
ships on the evidence of the moment it is approved, not of the moment it was created. A real
VictoriaMetrics holds the promotion check's series; the approving request asks it again, with
no transaction open, keeps the new numbers on the deployment's gates, and is refused (422,
nothing changed) when a check — or any other gate — fails now."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.support.databases import Database
from tests.support.live import VictoriaMetrics
from tests.support.problems import assert_problem
from tests.support.promstore import ProbingProxy, remote_write, store_clients, writer_blocked
from tests.support.web import csrf_of, is_html_error, signed_in

QUERY = 'sum(checkout_errors{environment="$environment", version="$version"})'
CHECK = {"name": "checkout errors", "query": QUERY, "op": "<", "value": 5}
GATE = "promotion_check:checkout errors"
DEPLOY = {"environment": "staging", "version": "2.0.0", "commit_sha": "abcdef1"}


def _errors(vm: VictoriaMetrics, value: float, version: str = "2.0.0") -> None:
    """The newest sample of the release's error count: later than any written before."""
    time.sleep(0.01)
    remote_write(
        vm.url,
        "checkout_errors",
        value,
        environment="staging",
        tags={"version": version},
        at=time.time() - 5,
    )
    vm.flush()


def _gate(detail: dict[str, Any], name: str = GATE) -> dict[str, Any]:
    return {g["gate"]: g for g in detail["gates"]}[name]


def _feature(admin: Any, name: str, enabled: bool) -> None:
    path = f"/api/v1/environments/staging/features/{name}"
    assert admin.put(path, json={"enabled": enabled}).status_code == 200


def _prepare(admin: Any, *, approval: bool = True) -> None:
    """Staging with the check (and ``require_approval``)."""
    checks = {"config": {"promotion_checks": [CHECK]}}
    assert admin.patch("/api/v1/environments/staging", json=checks).status_code == 200
    _feature(admin, "require_approval", approval)


def _waiting(admin: Any, **extra: Any) -> dict[str, Any]:
    created = admin.post("/api/v1/deployments", json={**DEPLOY, **extra})
    assert created.status_code == 201, created.text
    detail: dict[str, Any] = created.json()
    assert (detail["status"], detail["approval"]["required"]) == ("pending", True)
    return detail


def _unchanged(admin: Any, before: dict[str, Any]) -> None:
    """The deployment is exactly as it was: waiting, unapproved, its gates and logs as before."""
    now = admin.get(f"/api/v1/deployments/{before['id']}").json()
    assert now == before
    logs = admin.get(f"/api/v1/deployments/{before['id']}/logs").json()["items"]
    assert [line["message"] for line in logs] == [
        "created by admin-user; all gates passed",
        "waiting for approval by another deployer",
    ]


@pytest.fixture
def store_roles(
    db: Database, engine: Engine, victoria_metrics: VictoriaMetrics
) -> Iterator[tuple[Any, Any]]:
    """An admin (who creates) and a deployer (who approves) of a Shipboard reading
    VictoriaMetrics, with the check and ``require_approval`` on staging."""
    with (
        store_clients(db.url, engine, victoria_metrics.url) as clients,
        clients.as_role("admin") as admin,
        clients.as_role("deployer") as deployer,
    ):
        _prepare(admin)
        yield admin, deployer


def test_approval_is_refused_when_a_check_fails_now_and_given_when_it_holds_again(
    victoria_metrics: VictoriaMetrics, store_roles: tuple[Any, Any]
) -> None:
    admin, deployer = store_roles
    _errors(victoria_metrics, 1)
    created = _waiting(admin)
    assert _gate(created)["measured"]["values"] == [1]

    _errors(victoria_metrics, 12)
    approve = f"/api/v1/deployments/{created['id']}/approve"
    body = assert_problem(deployer.post(approve), 422)
    assert body["detail"] == (
        f"approval blocked by {GATE} (checkout errors: result 12; < 5 does not hold)"
    )
    assert body["errors"] == [
        {"loc": ["gates", GATE], "msg": "checkout errors: result 12; < 5 does not hold"}
    ]
    gate = {g["gate"]: g for g in body["gates"]}[GATE]  # type: ignore[union-attr]
    assert (gate["passed"], gate["measured"]["values"]) == (False, [12])
    _unchanged(admin, created)

    _errors(victoria_metrics, 2)
    approved = deployer.post(approve)
    assert approved.status_code == 200, approved.text
    detail = approved.json()
    assert detail["approval"]["approved_by"] == "deployer-user"
    gate = _gate(detail)
    assert gate["passed"]
    assert gate["reason"] == "checkout errors: result 2; < 5 holds"
    assert gate["measured"]["values"] == [2]
    assert admin.get(f"/api/v1/deployments/{created['id']}").json()["gates"] == detail["gates"]
    logs = admin.get(f"/api/v1/deployments/{created['id']}/logs").json()["items"]
    assert logs[-1]["message"] == "approved by deployer-user; gates judged again: all passed"


def test_a_store_that_cannot_answer_at_approval_refuses_it_and_changes_nothing(
    victoria_metrics: VictoriaMetrics, store_roles: tuple[Any, Any]
) -> None:
    admin, deployer = store_roles
    _errors(victoria_metrics, 1)
    created = _waiting(admin)
    victoria_metrics.stop()
    body = assert_problem(deployer.post(f"/api/v1/deployments/{created['id']}/approve"), 422)
    assert body["errors"] == [
        {
            "loc": ["gates", GATE],
            "msg": "checkout errors: cannot check: the metrics store did not answer (ConnectError)",
        }
    ]
    _unchanged(admin, created)


def test_the_other_gates_are_judged_again_at_approval_too(
    victoria_metrics: VictoriaMetrics, store_roles: tuple[Any, Any]
) -> None:
    admin, deployer = store_roles
    _errors(victoria_metrics, 1)
    created = _waiting(admin)
    _feature(admin, "deploy_freeze", True)
    approve = f"/api/v1/deployments/{created['id']}/approve"
    body = assert_problem(deployer.post(approve), 422)
    assert body["errors"] == [{"loc": ["gates", "deploy_freeze"], "msg": "deploy freeze is on"}]
    assert deployer.get(f"/api/v1/deployments/{created['id']}").json()["approval"] == {
        "required": True,
        "approved_by": None,
        "approved_at": None,
    }
    _feature(admin, "deploy_freeze", False)
    assert deployer.post(approve).status_code == 200


def test_a_rollback_is_judged_again_on_the_freezes_only(
    db: Database, engine: Engine, victoria_metrics: VictoriaMetrics
) -> None:
    """A rollback skips the gates about the version on create, so on approval too: it restores
    service whatever the release's metrics say, and the store is not asked; a freeze begun
    since it was asked for refuses its approval."""
    with (
        store_clients(db.url, engine, victoria_metrics.url) as clients,
        clients.as_role("admin") as admin,
        clients.as_role("deployer") as deployer,
    ):
        _prepare(admin, approval=False)
        served = []
        for version in ("1.0.0", "2.0.0"):
            _errors(victoria_metrics, 1, version=version)
            created = admin.post("/api/v1/deployments", json={**DEPLOY, "version": version})
            assert created.status_code == 201, created.text
            served.append(created.json()["id"])
            for status in ("building", "deploying", "success"):
                path = f"/api/v1/deployments/{served[-1]}/status"
                assert admin.post(path, json={"status": status}).status_code == 200
        _feature(admin, "require_approval", True)
        back = admin.post(f"/api/v1/deployments/{served[-1]}/rollback")
        assert back.status_code == 201, back.text
        rollback = back.json()
        assert rollback["approval"]["required"] is True
        assert [g["gate"] for g in rollback["gates"]] == ["deploy_freeze", "freeze_window"]
        victoria_metrics.stop()
        _feature(admin, "deploy_freeze", True)
        approve = f"/api/v1/deployments/{rollback['id']}/approve"
        body = assert_problem(deployer.post(approve), 422)
        assert body["errors"] == [{"loc": ["gates", "deploy_freeze"], "msg": "deploy freeze is on"}]
        _feature(admin, "deploy_freeze", False)
        approved = deployer.post(approve)
        assert approved.status_code == 200, approved.text
        assert [g["gate"] for g in approved.json()["gates"]] == ["deploy_freeze", "freeze_window"]


def test_a_forced_deployment_is_approved_without_asking_the_store(
    victoria_metrics: VictoriaMetrics, store_roles: tuple[Any, Any]
) -> None:
    admin, deployer = store_roles
    victoria_metrics.stop()
    created = _waiting(admin, force=True)
    approved = deployer.post(f"/api/v1/deployments/{created['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["gates"], approved.json()["forced"]) == ([], True)


def test_the_store_is_asked_at_approval_while_no_transaction_is_open(
    db: Database, engine: Engine, victoria_metrics: VictoriaMetrics
) -> None:
    _errors(victoria_metrics, 1)
    proxy = ProbingProxy(victoria_metrics.url, lambda: writer_blocked(db.url))
    try:
        with (
            store_clients(db.url, engine, proxy.url) as clients,
            clients.as_role("admin") as admin,
            clients.as_role("deployer") as deployer,
        ):
            _prepare(admin)
            created = _waiting(admin)
            assert proxy.probes == [None]
            approved = deployer.post(f"/api/v1/deployments/{created['id']}/approve")
    finally:
        proxy.stop()
    assert approved.status_code == 200, approved.text
    assert proxy.probes == [None, None]


def test_the_web_page_approves_the_same_way(
    db: Database, engine: Engine, victoria_metrics: VictoriaMetrics
) -> None:
    _errors(victoria_metrics, 1)
    with (
        store_clients(db.url, engine, victoria_metrics.url) as clients,
        clients.as_role("admin") as admin,
        signed_in(clients, engine, "deployer") as browser,
    ):
        _prepare(admin)
        created = _waiting(admin)
        page = f"/deployments/{created['id']}"
        _errors(victoria_metrics, 12)
        refused = browser.post(f"{page}/approve", data={"csrf_token": csrf_of(browser.get(page))})
        assert is_html_error(refused, 422)
        assert "checkout errors: result 12; &lt; 5 does not hold" in refused.text
        _unchanged(admin, created)
        _errors(victoria_metrics, 3)
        approved = browser.post(f"{page}/approve", data={"csrf_token": csrf_of(browser.get(page))})
        assert (approved.status_code, approved.headers["location"]) == (
            303,
            f"{page}?done=approved",
        )
        detail = admin.get(f"/api/v1/deployments/{created['id']}").json()
        assert detail["approval"]["approved_by"] == "deployer-user"
        assert _gate(detail)["measured"]["values"] == [3]
