"""Changes of status: the transition itself and what follows from it (log line, notification, the
original of a rollback), reported statuses and cancellation."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth.schemas import Principal
from shipboard.core.errors import Conflict, Forbidden
from shipboard.core.time import utcnow
from shipboard.db.engine import act_as_system
from shipboard.deployments import repository, state
from shipboard.deployments.logs import log_line
from shipboard.deployments.models import DeploymentConfig
from shipboard.deployments.queries import detail, require
from shipboard.deployments.schemas import DeploymentDetail, DeploymentRead, StatusUpdate
from shipboard.environments.service import require_environment
from shipboard.environments.validation import stored_mapping
from shipboard.notifications import service as notifications

SYSTEM_ACTOR = "shipboard"


def report_status(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    update: StatusUpdate,
    caller: Principal,
    audit_context: AuditContext,
) -> DeploymentDetail:
    """Advance a reported deployment (one whose environment has no pipeline)."""
    deployment = require(session, deployment_id, for_update=True)
    run = repository.get_run(session, deployment_id)
    if caller.role != "admin" and caller.name != deployment.triggered_by:
        raise Forbidden("only the deployment's triggerer or an admin may report its status")
    if run is not None and run.managed:
        raise Conflict("this deployment is run by Shipboard's pipeline; cancel it instead")
    if (
        run is not None
        and run.needs_approval
        and run.approved_by is None
        and update.status != "failed"
    ):
        raise Conflict("this deployment is waiting for approval")
    state.check_transition(deployment.status, update.status)
    transition(
        session,
        deployment,
        update.status,
        actor=caller.name,
        error_message=update.error_message,
    )
    if update.build_time is not None:
        deployment.build_time = update.build_time
    if update.deploy_time is not None:
        deployment.deploy_time = update.deploy_time
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="deployment.status",
        target_type="deployment",
        target_id=str(deployment_id),
        details={"status": update.status},
    )
    return detail(deployment, run)


def transition(
    session: Session,
    deployment: DeploymentConfig,
    target: str,
    *,
    actor: str,
    error_message: str | None = None,
    now: datetime | None = None,
) -> None:
    """Move a deployment to ``target``, log the transition and do what follows from it."""
    state.check_transition(deployment.status, target)
    now = now or utcnow()
    previous = deployment.status
    deployment.status = target
    # A rollback turns a finished deployment into rolled_back; when it finished stays true (DORA's
    # time to restore is measured from it).
    if target in state.TERMINAL and deployment.completed_at is None:
        deployment.completed_at = now
    if target in ("deploying", "success", "failed"):
        run = repository.get_run(session, deployment.id)
        if run is not None and target == "deploying" and run.deploy_started_at is None:
            # Reported deployments too: whether the deploy stage ran decides if one can be
            # rolled back after it failed.
            run.deploy_started_at = now
        if run is not None and target != "deploying" and run.outcome is None:
            run.outcome = target
    if error_message is not None:
        deployment.error_message = error_message
    level = "error" if target == "failed" else "info"
    text = f"status {previous} -> {target} ({actor})"
    if error_message:
        text += f": {error_message}"
    log_line(session, deployment.id, level, text)
    session.flush()
    _notify(session, deployment, notifications.DEPLOYMENT_EVENTS.get(target), text)
    if deployment.rollback_from is not None and target in ("success", "failed"):
        _finish_rollback(session, deployment, succeeded=target == "success", now=now)


def _finish_rollback(
    session: Session, rollback: DeploymentConfig, *, succeeded: bool, now: datetime
) -> None:
    assert rollback.rollback_from is not None
    original = repository.get(session, rollback.rollback_from)
    if original is None:
        return
    act_as_system(session)
    if succeeded:
        original_run = repository.get_run(session, original.id)
        deploy_ran = original_run is None or original_run.deploy_started_at is not None
        if state.can_roll_back(original.status, deploy_ran=deploy_ran):
            transition(session, original, "rolled_back", actor=SYSTEM_ACTOR, now=now)
            log_line(session, original.id, "info", f"rolled back by deployment {rollback.id}")
        return
    # A rollback that fails must not go unnoticed: say it on both deployments, at error level.
    message = (
        f"ROLLBACK FAILED: deployment {rollback.id} (back to {rollback.version}) failed"
        f"{': ' + rollback.error_message if rollback.error_message else ''}; "
        f"{original.environment} is still on the state left by {original.id}"
    )
    log_line(session, original.id, "error", message)
    log_line(session, rollback.id, "error", message)
    _notify(session, original, "deployment.rollback_failed", message)


def _notify(
    session: Session, deployment: DeploymentConfig, event: str | None, message: str
) -> None:
    if event is None:
        return
    environment = require_environment(session, deployment.environment)
    notifications.notify_environment(
        session,
        environment_config=stored_mapping(environment.config),
        event=event,
        message=f"{deployment.environment} {deployment.version}: {message}",
        details={"deployment": DeploymentRead.model_validate(deployment).model_dump(mode="json")},
        link=f"/deployments/{deployment.id}",
    )


def cancel(
    session: Session, *, deployment_id: uuid.UUID, caller: Principal, audit_context: AuditContext
) -> DeploymentDetail:
    """Cancel a pending or running deployment; a running step's process group is killed."""
    deployment = require(session, deployment_id, for_update=True)
    run = repository.get_run(session, deployment_id)
    if caller.role != "admin" and caller.name != deployment.triggered_by:
        raise Forbidden("only the deployment's triggerer or an admin may cancel it")
    if deployment.status in state.TERMINAL:
        raise Conflict(f"the deployment is already {deployment.status}")
    reason = f"cancelled by {caller.name}"
    if deployment.status in state.RUNNING and run is not None and run.managed:
        # The worker running it sees the request, kills the step and fails the deployment.
        run.cancel_requested_by = caller.name
        session.flush()
        log_line(session, deployment.id, "warn", f"cancel requested by {caller.name}")
    else:
        transition(session, deployment, "failed", actor=caller.name, error_message=reason)
    audit.record(
        session,
        context=audit_context,
        action="deployment.cancel",
        target_type="deployment",
        target_id=str(deployment_id),
    )
    return detail(deployment, run)
