"""Rollback: deploy again the last version that succeeded before the deployment now serving."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth.schemas import Principal
from shipboard.core.errors import Conflict, Forbidden, GateBlocked, NotFound
from shipboard.core.time import utcnow
from shipboard.deployments import gates, repository, state
from shipboard.deployments.creation import new_deployment, pipeline_of, pipeline_secrets
from shipboard.deployments.facts import freeze_facts
from shipboard.deployments.logs import log_line
from shipboard.deployments.models import DeploymentRun
from shipboard.deployments.queries import detail, require
from shipboard.deployments.schemas import DeploymentDetail
from shipboard.deployments.transitions import SYSTEM_ACTOR
from shipboard.environments.service import require_environment
from shipboard.environments.validation import stored_mapping


def rollback(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    caller: Principal | None,
    audit_context: AuditContext | None,
    force: bool = False,
) -> DeploymentDetail:
    """Deploy again the last version that succeeded before the deployment now serving.

    ``caller`` None is Shipboard's own automatic rollback: it restores service after a failed
    verification and skips approval and freezes. A person's rollback is refused unless it names
    the deployment that serves (anything else would deploy an arbitrary old version past every
    gate); it passes the freezes and waits for approval where the environment requires it,
    unless an admin forces it.
    """
    automatic = caller is None
    actor = SYSTEM_ACTOR if caller is None else caller.name
    if force and (caller is None or caller.role != "admin"):
        raise Forbidden("only an admin may force a rollback past approval and freezes")
    # The environment's lock first, as creation and the worker take it: it orders this rollback
    # against other rollbacks and new deployments of the environment.
    environment = repository.lock_environment(session, require(session, deployment_id).environment)
    original = require(session, deployment_id, for_update=True)
    if environment is None:
        raise NotFound(f"environment {original.environment!r} does not exist")
    original_run = repository.get_run(session, deployment_id)
    deploy_ran = original_run is None or original_run.deploy_started_at is not None
    if not state.can_roll_back(original.status, deploy_ran=deploy_ran):
        raise Conflict(
            f"a {original.status} deployment cannot be rolled back"
            + ("" if deploy_ran else " (it failed before its deploy stage ran)")
        )
    serving = repository.current_for_environment(session, original.environment)
    if serving is None or serving.id != original.id:
        raise Conflict(
            f"deployment {original.id} is not the one serving {original.environment}"
            + (f" ({serving.id}, {serving.version} is)" if serving is not None else "")
            + "; roll back the current deployment, or deploy the version you want",
            extra={"serving": str(serving.id) if serving is not None else None},
        )
    assert original.created_at is not None
    target = repository.last_success_before(
        session, original.environment, original.created_at, other_than=original
    )
    if target is None:
        raise Conflict(f"no successful deployment of {original.environment} before this one")
    now = utcnow()
    results: list[gates.GateResult] = []
    if not automatic and not force:
        results = gates.freezes(freeze_facts(environment, target, now))
        failed = [r for r in results if not r.passed]
        if failed:
            raise GateBlocked(
                "rollback blocked by " + ", ".join(r.gate for r in failed),
                errors=[{"loc": ["gates", r.gate], "msg": r.reason} for r in failed],
                extra={"gates": [r.as_dict() for r in results]},
            )
    pipeline = pipeline_of(environment)
    new = new_deployment(
        session,
        environment=environment,
        version=target.version,
        commit_sha=target.commit_sha,
        triggered_by=actor,
        logs_url=None,
        artifacts_url=target.artifacts_url,
        rollback_from=original.id,
        now=now,
    )
    # Shipboard's own rollback restores service after a failed check, with nobody to approve
    # it at that hour; a person's rollback is a change like any other where approval is asked.
    needs_approval = (
        not automatic
        and not force
        and bool(stored_mapping(environment.features).get("require_approval"))
    )
    repository.add_run(
        session,
        DeploymentRun(
            deployment_id=new.id,
            managed=pipeline is not None,
            pipeline=pipeline.model_dump(mode="json") if pipeline else None,
            pipeline_secrets=pipeline_secrets(environment) if pipeline else None,
            forced=force,
            gate_results=[r.as_dict() for r in results],
            analysis=[],
            needs_approval=needs_approval,
        ),
    )
    kind = "automatic rollback" if automatic else f"rollback by {actor}"
    if force:
        kind = f"forced {kind}"
    log_line(session, new.id, "info", f"{kind} of {original.id}: redeploying {target.version}")
    if needs_approval:
        log_line(session, new.id, "info", "waiting for approval by another deployer")
    log_line(
        session,
        original.id,
        "warn",
        f"{kind} started: deployment {new.id} ({target.version})",
    )
    if audit_context is not None:
        audit.record(
            session,
            context=audit_context,
            action="deployment.rollback_forced" if force else "deployment.rollback",
            target_type="deployment",
            target_id=str(deployment_id),
            details={
                "rollback_deployment": str(new.id),
                "version": target.version,
                "forced": force,
            },
        )
    return detail(new, repository.get_run(session, new.id))


def rollback_environment(
    session: Session,
    *,
    name: str,
    caller: Principal,
    audit_context: AuditContext,
    force: bool = False,
) -> DeploymentDetail:
    """Roll back the deployment now serving an environment."""
    require_environment(session, name)
    current = repository.current_for_environment(session, name)
    if current is None:
        raise Conflict(f"{name} has no successful deployment to roll back")
    return rollback(
        session,
        deployment_id=current.id,
        caller=caller,
        audit_context=audit_context,
        force=force,
    )
