"""What the pages show, gathered from the domain services (no queries of its own beyond them)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shipboard.alerting import alerts
from shipboard.auth.schemas import Principal
from shipboard.core.time import utcnow
from shipboard.deployments import repository as deployment_repository
from shipboard.deployments import service as deployments
from shipboard.deployments import state
from shipboard.deployments.schemas import DeploymentFilter
from shipboard.environments import service as environments
from shipboard.reports import service as reports
from shipboard.security.service import current_findings

LOG_LINES = 500  # the API's page size; the live tail brings the rest
SEVERITY_ORDER = ("critical", "high", "medium", "low")


def overview(session: Session) -> list[dict[str, Any]]:
    """One card per environment: what serves, the last deployment, what runs or waits, open
    findings by severity, firing alerts, and the last 30 days' frequency and failure rate."""
    now = utcnow()
    firing = alerts.all_alerts(session, state="firing")
    cards = []
    for env in environments.list_environments(session, reveal_credentials=False):
        recent = deployments.list_deployments(
            session, filters=DeploymentFilter(environment=env.name), limit=50
        ).items
        current = next((d for d in recent if d.status == "success"), None)
        findings = current_findings(session, environment=env.name, status="open", limit=5000)
        by_severity = Counter(f["severity"] for f in findings)
        dora = reports.dora_report(
            session, environment=env.name, since=now - timedelta(days=30), until=now
        )
        cards.append(
            {
                "name": env.name,
                "domain": env.domain,
                "current": current,
                "last": recent[0] if recent else None,
                "running": [d for d in recent if d.status in ("building", "deploying")],
                "queued": sum(1 for d in recent if d.status == "pending"),
                "findings": [(s, by_severity.get(s, 0)) for s in SEVERITY_ORDER],
                "overdue": sum(1 for f in findings if f.get("overdue")),
                "alerts": [a for a in firing if a.labels.get("environment") == env.name],
                "frequency": dora["deployment_frequency"],
                "failure_rate": dora["change_failure_rate"],
            }
        )
    return cards


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _is_serving(session: Session, environment: str, deployment_id: uuid.UUID) -> bool:
    serving = deployment_repository.current_for_environment(session, environment)
    return serving is not None and serving.id == deployment_id


def deployment_view(
    session: Session, *, deployment_id: uuid.UUID, principal: Principal
) -> dict[str, Any]:
    """One deployment: detail, its stages with durations, log lines, and what this viewer may do
    (the same rules the API applies, so a button never leads to a 403)."""
    detail = deployments.get_deployment(session, deployment_id=deployment_id)
    run = deployment_repository.get_run(session, deployment_id)
    logs = deployments.list_logs(session, deployment_id=deployment_id, limit=LOG_LINES)
    started = run.started_at if run else None
    deploy_started = run.deploy_started_at if run else None
    verify_started = run.verify_started_at if run else None
    done = detail.completed_at
    status = detail.status
    order = ["pending", "building", "deploying", "verification", "result"]
    reached = {
        "pending": True,
        "building": started is not None or status in ("building", "deploying") or done is not None,
        "deploying": deploy_started is not None or status == "deploying",
        "verification": verify_started is not None,
        "result": status in state.TERMINAL,
    }
    current = {"pending": "pending", "building": "building", "deploying": "deploying"}.get(status)
    if status == "deploying" and verify_started is not None:
        current = "verification"
    stages: list[dict[str, Any]] = [
        {"name": "pending", "seconds": _seconds(detail.created_at, started or done)},
        {
            "name": "building",
            "seconds": _seconds(started, deploy_started or (done if started else None)),
        },
        {
            "name": "deploying",
            "seconds": _seconds(
                deploy_started, verify_started or (done if deploy_started else None)
            ),
        },
        {
            "name": "verification",
            "seconds": _seconds(verify_started, done if verify_started else None),
        },
        {"name": "result", "seconds": None, "status": status if status in state.TERMINAL else None},
    ]
    for stage in stages:
        name = stage["name"]
        stage["reached"] = reached[name]
        stage["current"] = name == current
        stage["failed"] = name == "result" and status == "failed"
    writer = principal.role in ("deployer", "admin")
    deploy_ran = run is None or run.deploy_started_at is not None
    is_triggerer = principal.name == detail.triggered_by
    return {
        "d": detail,
        "stages": stages,
        "stage_order": order,
        "logs": logs.items,
        "more_logs": logs.next_cursor is not None,
        # Only the deployment serving its environment can be rolled back (deployments.md).
        "can_rollback": writer
        and state.can_roll_back(status, deploy_ran=deploy_ran)
        and _is_serving(session, detail.environment, detail.id),
        "can_cancel": status not in state.TERMINAL and (principal.role == "admin" or is_triggerer),
        "can_approve": writer
        and detail.approval.required
        and detail.approval.approved_by is None
        and status == "pending"
        and not is_triggerer,
    }
