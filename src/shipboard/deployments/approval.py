"""Approval: another deployer approves a deployment that waits for it, or rejects it."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth.schemas import Principal
from shipboard.core.errors import Conflict, Forbidden
from shipboard.core.time import utcnow
from shipboard.db.engine import act_as_system
from shipboard.deployments.logs import log_line
from shipboard.deployments.queries import detail, require, require_run
from shipboard.deployments.schemas import DeploymentDetail
from shipboard.deployments.transitions import transition


def approve(
    session: Session, *, deployment_id: uuid.UUID, caller: Principal, audit_context: AuditContext
) -> DeploymentDetail:
    """Approve a deployment waiting for it; the triggerer may not approve their own."""
    deployment = require(session, deployment_id, for_update=True)
    run = require_run(session, deployment_id)
    if not run.needs_approval:
        raise Conflict("this deployment does not need approval")
    if deployment.status != "pending":
        raise Conflict(
            f"only a pending deployment can be approved; this one is {deployment.status}"
        )
    if run.approved_by is not None:
        raise Conflict(f"already approved by {run.approved_by}")
    if caller.name == deployment.triggered_by:
        raise Forbidden("you triggered this deployment; another deployer must approve it")
    run.approved_by = caller.name
    run.approved_at = utcnow()
    session.flush()
    log_line(session, deployment.id, "info", f"approved by {caller.name}")
    audit.record(
        session,
        context=audit_context,
        action="deployment.approve",
        target_type="deployment",
        target_id=str(deployment_id),
    )
    return detail(deployment, run)


def reject(
    session: Session, *, deployment_id: uuid.UUID, caller: Principal, audit_context: AuditContext
) -> DeploymentDetail:
    """Reject a deployment waiting for approval: it fails without running."""
    deployment = require(session, deployment_id, for_update=True)
    run = require_run(session, deployment_id)
    if not run.needs_approval or deployment.status != "pending" or run.approved_by is not None:
        raise Conflict("only a pending deployment waiting for approval can be rejected")
    if caller.name == deployment.triggered_by:
        raise Forbidden("you triggered this deployment; cancel it instead")
    act_as_system(session)
    transition(
        session, deployment, "failed", actor=caller.name, error_message=f"rejected by {caller.name}"
    )
    audit.record(
        session,
        context=audit_context,
        action="deployment.reject",
        target_type="deployment",
        target_id=str(deployment_id),
    )
    return detail(deployment, run)
