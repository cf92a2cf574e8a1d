"""Deployment gates over HTTP: a blocked create is a 422 naming each failing gate, forcing is an
audited admin act, and each gate reads its own domain (freezes and their time zones, staging
success, critical and overdue findings, regressions). The gates themselves are tested directly
in test_gates.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from tests.support.factories import created, import_report
from tests.support.live import Clients
from tests.support.problems import assert_problem


def test_gates_block_and_pass(clients: Clients, engine: Engine, make_user: Any) -> None:
    with clients.as_role("admin") as admin:
        admin.put("/api/v1/environments/development/features/deploy_freeze", json={"enabled": True})
        blocked = admin.post(
            "/api/v1/deployments",
            json={"environment": "development", "version": "1", "commit_sha": "abcdef1"},
        )
        body = assert_problem(blocked, 422)
        assert [e["loc"] for e in body["errors"]] == [["gates", "deploy_freeze"]]  # type: ignore[index,union-attr]
        assert {g["gate"]: g["passed"] for g in body["gates"]}["deploy_freeze"] is False  # type: ignore[union-attr,index]
        admin.put(
            "/api/v1/environments/development/features/deploy_freeze", json={"enabled": False}
        )
        assert (
            admin.post(
                "/api/v1/deployments",
                json={"environment": "development", "version": "1", "commit_sha": "abcdef1"},
            ).status_code
            == 201
        )

        # Production: staging success required, critical findings block, regressions block.
        prod = {"environment": "production", "version": "3.1.0", "commit_sha": "cafe123"}
        body = assert_problem(admin.post("/api/v1/deployments", json=prod), 422)
        assert ["gates", "require_staging_success"] in [e["loc"] for e in body["errors"]]  # type: ignore[union-attr]
        staging = admin.post("/api/v1/deployments", json={**prod, "environment": "staging"}).json()
        for status in ("building", "deploying", "success"):
            admin.post(f"/api/v1/deployments/{staging['id']}/status", json={"status": status})
        ok = admin.post("/api/v1/deployments", json=prod)
        assert ok.status_code == 201, ok.text
        assert all(g["passed"] for g in ok.json()["gates"])

    from shipboard.db.engine import transaction
    from shipboard.performance.schemas import PerformanceMetricCreate
    from shipboard.performance.service import record_results
    from shipboard.security.schemas import SecurityFindingCreate, SecurityScanCreate
    from shipboard.security.service import create_finding, create_scan

    with transaction(engine) as session:
        scan = create_scan(
            session,
            data=SecurityScanCreate(
                type="dependency", environment="production", status="completed"
            ),
        )
        create_finding(
            session,
            data=SecurityFindingCreate(
                scan_id=scan.id, severity="critical", title="RCE", description="d"
            ),
        )
        record_results(
            session,
            metrics=[
                PerformanceMetricCreate(
                    name="p95_ms",
                    environment="staging",
                    value=900,
                    unit="ms",
                    threshold=500,
                    tags={"version": "3.1.0"},
                )
            ],
        )
    with clients.as_role("admin") as admin:
        body = assert_problem(admin.post("/api/v1/deployments", json=prod), 422)
        failed = {e["loc"][1] for e in body["errors"]}  # type: ignore[union-attr]
        assert failed == {"block_on_critical_findings", "performance_regressions"}
        before = len(
            admin.get("/api/v1/audit", params={"action": "deployment.create_forced"}).json()[
                "items"
            ]
        )
        forced = admin.post("/api/v1/deployments", json={**prod, "force": True})
        assert forced.status_code == 201
        assert forced.json()["forced"] is True
        after = admin.get("/api/v1/audit", params={"action": "deployment.create_forced"}).json()[
            "items"
        ]
        assert len(after) == before + 1
    with clients.as_role("deployer") as deployer:
        assert_problem(deployer.post("/api/v1/deployments", json={**prod, "force": True}), 403)


def test_freeze_window_in_a_non_utc_timezone(clients: Clients) -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    tokyo = datetime.now(UTC).astimezone(ZoneInfo("Asia/Tokyo"))
    now_window = {
        "cron": f"{tokyo.minute} {tokyo.hour} * * *",
        "duration_minutes": 5,
        "timezone": "Asia/Tokyo",
    }
    other_hour = (tokyo.hour + 6) % 24
    later_window = {
        "cron": f"0 {other_hour} * * *",
        "duration_minutes": 30,
        "timezone": "Asia/Tokyo",
    }
    deploy = {"environment": "development", "version": "1", "commit_sha": "abcdef1"}
    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/development", json={"config": {"freeze_windows": [later_window]}}
        )
        assert admin.post("/api/v1/deployments", json=deploy).status_code == 201
        admin.patch(
            "/api/v1/environments/development",
            json={"config": {"freeze_windows": [later_window, now_window]}},
        )
        body = assert_problem(admin.post("/api/v1/deployments", json=deploy), 422)
    assert "Asia/Tokyo" in body["errors"][0]["msg"]  # type: ignore[index]


def test_production_gate_reads_imported_criticals_and_honours_triage(clients: Clients) -> None:
    deploy = {
        "environment": "production",
        "version": "2.0.0",
        "commit_sha": "abcdef1",
    }
    with clients.as_role("admin") as admin:
        admin.put(
            "/api/v1/environments/production/features/require_staging_success",
            json={"enabled": False},
        )
        created(
            import_report(
                admin, "trivy/dd_misconfigurations_and_secrets.json", environment="production"
            )
        )
        body = assert_problem(admin.post("/api/v1/deployments", json=deploy), 422)
        assert ["gates", "block_on_critical_findings"] in [e["loc"] for e in body["errors"]]  # type: ignore[union-attr]
        criticals = list(
            admin.get(
                "/api/v1/security/findings",
                params={"environment": "production", "severity": "critical"},
            ).json()["items"]
        )
        assert len(criticals) == 2
        for finding in criticals:
            admin.patch(
                f"/api/v1/security/findings/{finding['id']}",
                json={"status": "accepted_risk", "reason": "test fixture secrets, revoked"},
            )
        assert admin.post("/api/v1/deployments", json=deploy).status_code == 201


def test_overdue_high_gate(clients: Clients, engine: Engine) -> None:
    from tests.support.factories import age_finding_identities, created, import_report

    deploy = {"environment": "development", "version": "1.0.0", "commit_sha": "abcdef1"}
    with clients.as_role("admin") as admin:
        admin.put(
            "/api/v1/environments/development/features/block_on_overdue_high",
            json={"enabled": True},
        )
        created(import_report(admin, "npm_audit/dd_npm6_many_vuln.json", environment="development"))
        assert admin.post("/api/v1/deployments", json=deploy).status_code == 201
        age_finding_identities(engine, days=45)
        body = assert_problem(
            admin.post("/api/v1/deployments", json={**deploy, "version": "1.0.1"}), 422
        )
    assert [e["loc"] for e in body["errors"]] == [["gates", "block_on_overdue_high"]]  # type: ignore[union-attr]
    assert "3 open high finding(s) past their SLA" in body["errors"][0]["msg"]  # type: ignore[index]
