"""Deployments run elsewhere (GitHub Actions, GitLab CI), recorded from their webhooks.

They report what already happened, so gates never block them. The gates are evaluated all the
same, and a deployment that would have failed one is flagged — its gate results on its run, a
warning in its log and an audit event — so that nobody learns it later.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.errors import NotFound
from shipboard.deployments import gates, repository, service
from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.deployments.schemas import DeploymentCreate


def record(
    session: Session,
    *,
    environment: str,
    version: str,
    commit_sha: str,
    triggered_by: str,
    logs_url: str | None,
    commit_timestamp: datetime | None,
    created_at: datetime,
    source: str,
    audit_context: AuditContext,
) -> DeploymentConfig:
    """Record a deployment reported by ``source`` in ``pending``, with its gates evaluated (as of
    ``created_at``) but not enforced."""
    target = repository.lock_environment(session, environment)
    if target is None:
        raise NotFound(f"environment {environment!r} does not exist")
    facts = service.gate_facts(
        session,
        target,
        DeploymentCreate.model_validate(
            {"environment": environment, "version": version, "commit_sha": commit_sha}
        ),
        created_at,
    )
    results = gates.evaluate(facts)
    failed = [r for r in results if not r.passed]
    deployment = service.new_deployment(
        session,
        environment=target,
        version=version,
        commit_sha=commit_sha,
        triggered_by=triggered_by,
        logs_url=logs_url,
        artifacts_url=None,
        rollback_from=None,
        now=created_at,
    )
    repository.add_run(
        session,
        DeploymentRun(
            deployment_id=deployment.id,
            managed=False,
            pipeline=None,
            commit_timestamp=commit_timestamp,
            forced=False,
            gate_results=[r.as_dict() for r in results],
            analysis=[],
            # Approval gates what Shipboard is about to do; this already happened.
            needs_approval=False,
        ),
    )
    service.log_line(session, deployment.id, "info", f"recorded from {source} ({triggered_by})")
    audit.record(
        session,
        context=audit_context,
        action="deployment.record_external",
        target_type="deployment",
        target_id=str(deployment.id),
        details={
            "source": source,
            "environment": environment,
            "version": version,
            "commit_sha": commit_sha,
            "triggered_by": triggered_by,
        },
    )
    if failed:
        reasons = "; ".join(f"{r.gate}: {r.reason}" for r in failed)
        service.log_line(
            session,
            deployment.id,
            "warn",
            f"deployed outside Shipboard past failing gates (not blocked, flagged): {reasons}",
        )
        audit.record(
            session,
            context=audit_context,
            action="deployment.gates_failed_external",
            target_type="deployment",
            target_id=str(deployment.id),
            details={"source": source, "gates": [r.as_dict() for r in failed]},
        )
    return deployment


def advance(
    session: Session,
    deployment: DeploymentConfig,
    steps: list[str],
    *,
    actor: str,
    at: datetime,
    error_message: str | None = None,
    logs_url: str | None = None,
) -> None:
    """Walk ``steps`` (each an allowed transition), as reported by ``actor`` at ``at``."""
    if logs_url and not deployment.logs_url:
        deployment.logs_url = logs_url
    for step in steps:
        service.transition(
            session,
            deployment,
            step,
            actor=actor,
            error_message=error_message if step == "failed" else None,
            now=at,
        )
