"""Deployments: create (through the gates), track, advance, approve, cancel, roll back, log."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth.schemas import Principal
from shipboard.core.errors import (
    Conflict,
    Forbidden,
    GateBlocked,
    InvalidInput,
    NotFound,
    RateLimited,
)
from shipboard.core.pagination import clamp_limit
from shipboard.core.time import utcnow
from shipboard.db.engine import act_as_system
from shipboard.deployments import gates, repository, state
from shipboard.deployments.models import DeploymentConfig, DeploymentLog, DeploymentRun
from shipboard.deployments.schemas import (
    Approval,
    DeploymentCreate,
    DeploymentDetail,
    DeploymentFilter,
    DeploymentLogCreate,
    DeploymentLogPage,
    DeploymentLogRead,
    DeploymentPage,
    DeploymentRead,
    GateResultRead,
    LogFilter,
    StatusUpdate,
)
from shipboard.environments import validation
from shipboard.environments.models import Environment
from shipboard.environments.service import require_environment
from shipboard.notifications import service as notifications
from shipboard.performance.service import blocking_regressions
from shipboard.pipelines.schemas import Pipeline
from shipboard.security.imports import current_findings

SYSTEM_ACTOR = "shipboard"
MICROSECOND = timedelta(microseconds=1)
# One validator for a whole page of rows: far cheaper than a model_validate per ORM object.
_READ_LIST = TypeAdapter(list[DeploymentRead])


# --- creation -------------------------------------------------------------------------------


def create_deployment(
    session: Session,
    *,
    data: DeploymentCreate,
    caller: Principal,
    audit_context: AuditContext,
    now: datetime | None = None,
) -> DeploymentDetail:
    """Record a deployment in ``pending`` after the frequency limit and the gates."""
    now = now or utcnow()
    if data.force and caller.role != "admin":
        raise Forbidden("only an admin may force a deployment past its gates")
    environment = repository.lock_environment(session, data.environment)
    if environment is None:
        raise NotFound(f"environment {data.environment!r} does not exist")
    _check_frequency(session, environment, now)
    pipeline = _pipeline_of(environment)
    results: list[gates.GateResult] = []
    if not data.force:
        results = gates.evaluate(_gate_facts(session, environment, data, now))
        failed = [r for r in results if not r.passed]
        if failed:
            raise GateBlocked(
                "blocked by " + ", ".join(r.gate for r in failed),
                errors=[{"loc": ["gates", r.gate], "msg": r.reason} for r in failed],
                extra={"gates": [r.as_dict() for r in results]},
            )
    deployment = _new_deployment(
        session,
        environment=environment,
        version=data.version,
        commit_sha=data.commit_sha,
        triggered_by=caller.name,
        logs_url=data.logs_url,
        artifacts_url=data.artifacts_url,
        rollback_from=None,
        now=now,
    )
    run = DeploymentRun(
        deployment_id=deployment.id,
        managed=pipeline is not None,
        pipeline=pipeline.model_dump(mode="json") if pipeline else None,
        commit_timestamp=data.commit_timestamp,
        forced=data.force,
        gate_results=[r.as_dict() for r in results],
        analysis=[],
        needs_approval=bool(_mapping(environment.features).get("require_approval")),
    )
    repository.add_run(session, run)
    summary = "gates skipped (forced by admin)" if data.force else "all gates passed"
    log_line(session, deployment.id, "info", f"created by {caller.name}; {summary}")
    if run.needs_approval:
        log_line(session, deployment.id, "info", "waiting for approval by another deployer")
    audit.record(
        session,
        context=audit_context,
        action="deployment.create_forced" if data.force else "deployment.create",
        target_type="deployment",
        target_id=str(deployment.id),
        details={
            "environment": data.environment,
            "version": data.version,
            "commit_sha": data.commit_sha,
            "forced": data.force,
        },
    )
    return _detail(deployment, run)


def _new_deployment(
    session: Session,
    *,
    environment: Environment,
    version: str,
    commit_sha: str,
    triggered_by: str,
    logs_url: str | None,
    artifacts_url: str | None,
    rollback_from: uuid.UUID | None,
    now: datetime,
) -> DeploymentConfig:
    return repository.add(
        session,
        DeploymentConfig(
            id=uuid.uuid4(),
            environment=environment.name,
            version=version,
            commit_sha=commit_sha,
            status="pending",
            created_at=now,
            triggered_by=triggered_by,
            logs_url=logs_url,
            artifacts_url=artifacts_url,
            rollback_from=rollback_from,
        ),
    )


def _mapping(value: object) -> dict[str, Any]:
    # Stored JSON edited by hand may be anything; what is not an object reads as empty here and
    # is named by the configuration gate.
    return value if isinstance(value, dict) else {}


def _pipeline_of(environment: Environment) -> Pipeline | None:
    raw = _mapping(environment.config).get("pipeline")
    if not raw:
        return None
    try:
        return Pipeline.model_validate(raw)
    except ValidationError as exc:
        problems = validation.model_problems(Pipeline, raw, loc=("config", "pipeline"))
        raise InvalidInput(
            f"environment {environment.name!r} has an invalid stored config.pipeline: "
            f"{validation.describe(problems[:3])}; fix it with `shipboard env set`",
            errors=problems,
        ) from exc


def _check_frequency(session: Session, environment: Environment, now: datetime) -> None:
    limit = _mapping(environment.limits).get("max_deployment_frequency")
    if not isinstance(limit, int) or limit <= 0:
        return
    recent = repository.created_since(session, environment.name, now - timedelta(hours=1))
    if len(recent) >= limit:
        # The window frees a slot when the oldest deployment in it is an hour old.
        oldest = recent[-limit]
        retry = max(1, math.ceil((oldest + timedelta(hours=1) - now).total_seconds()))
        raise RateLimited(
            f"{environment.name} allows {limit} deployment(s) an hour; try again in {retry} s",
            headers={"Retry-After": str(retry)},
        )


def _stored_gate_inputs(
    environment: Environment,
) -> tuple[dict[str, bool], list[dict[str, Any]], list[dict[str, Any]]]:
    """Features, freeze windows and what the validator refuses in the stored environment."""
    stored = {
        "domain": environment.domain,
        "config": environment.config if environment.config is not None else {},
        "features": environment.features if environment.features is not None else {},
        "limits": environment.limits if environment.limits is not None else {},
    }
    problems = validation.environment_problems(stored)
    windows = _mapping(environment.config).get("freeze_windows")
    # A flag that is not a boolean counts as on: the configuration gate names it, and reading
    # "maybe" as off would open a gate that should block.
    features = {
        k: v if isinstance(v, bool) else True for k, v in _mapping(environment.features).items()
    }
    return features, list(windows) if isinstance(windows, list) else [], problems


def _gate_facts(
    session: Session, environment: Environment, data: DeploymentCreate, now: datetime
) -> gates.GateFacts:
    features, windows, problems = _stored_gate_inputs(environment)
    facts = gates.GateFacts(
        environment=environment.name,
        version=data.version,
        commit_sha=data.commit_sha,
        features=features,
        freeze_windows=windows,
        now=now,
        staging_success=False,
        unresolved_critical=0,
        config_problems=problems,
    )
    staging_ok = (
        repository.succeeded_in(session, "staging", data.version, data.commit_sha)
        if gates.feature(facts, "require_staging_success")
        else False
    )
    critical = (
        repository.unresolved_critical_in_latest_scans(session, environment.name)
        if gates.feature(facts, "block_on_critical_findings")
        else 0
    )
    # Evidence from staging gates production only: development must stay free to try things.
    regressions = (
        blocking_regressions(session, environment="staging", version=data.version)
        if environment.name == "production"
        else []
    )
    # Overdue in the query: filtered after a limit, the oldest (the overdue ones) fell off.
    overdue_high = (
        len(
            current_findings(
                session,
                environment=environment.name,
                severity="high",
                status="open",
                overdue=True,
                limit=1_000_000,
            )
        )
        if gates.feature(facts, "block_on_overdue_high")
        else 0
    )
    return gates.GateFacts(
        **{
            **facts.__dict__,
            "overdue_high": overdue_high,
            "staging_success": staging_ok,
            "unresolved_critical": critical,
            "regressions": regressions,
        }
    )


# --- reading --------------------------------------------------------------------------------


def get_deployment(session: Session, *, deployment_id: uuid.UUID) -> DeploymentDetail:
    """One deployment with its gates, analysis and approval."""
    deployment = _require(session, deployment_id)
    return _detail(deployment, repository.get_run(session, deployment_id))


def list_deployments(
    session: Session,
    *,
    filters: DeploymentFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> DeploymentPage:
    """Newest first, filtered on the spec's indexed columns."""
    page = repository.page(session, filters=filters, cursor=cursor, limit=clamp_limit(limit))
    return DeploymentPage(
        items=_READ_LIST.validate_python([row._asdict() for row in page.items]),
        next_cursor=page.next_cursor,
    )


def _detail(deployment: DeploymentConfig, run: DeploymentRun | None) -> DeploymentDetail:
    base = DeploymentRead.model_validate(deployment).model_dump()
    if run is None:
        # Rows written before runs existed, or by another tool: a reported deployment.
        return DeploymentDetail(**base, managed=False, approval=Approval(required=False))
    return DeploymentDetail(
        **base,
        managed=run.managed,
        commit_timestamp=run.commit_timestamp,
        forced=run.forced,
        gates=[GateResultRead.model_validate(g) for g in run.gate_results or []],
        gate_violations=[g["gate"] for g in run.gate_results or [] if not g.get("passed", True)],
        analysis=list(run.analysis or []),
        approval=Approval(
            required=run.needs_approval, approved_by=run.approved_by, approved_at=run.approved_at
        ),
        verify_time=run.verify_time,
        cancel_requested_by=run.cancel_requested_by,
        watch_state=run.watch_state,
    )


# --- changes of state -----------------------------------------------------------------------


def report_status(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    update: StatusUpdate,
    caller: Principal,
    audit_context: AuditContext,
) -> DeploymentDetail:
    """Advance a reported deployment (one whose environment has no pipeline)."""
    deployment = _require(session, deployment_id, for_update=True)
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
    return _detail(deployment, run)


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
        environment_config=_mapping(environment.config),
        event=event,
        message=f"{deployment.environment} {deployment.version}: {message}",
        details={"deployment": DeploymentRead.model_validate(deployment).model_dump(mode="json")},
        link=f"/deployments/{deployment.id}",
    )


def notify_gate_block(
    session: Session, *, data: DeploymentCreate, caller: str, error: GateBlocked
) -> None:
    """Tell the environment's channels that a deployment was blocked (its own transaction)."""
    environment = repository.get_environment(session, data.environment)
    if environment is None:
        return
    failed = ", ".join(str(e["loc"][-1]) for e in error.errors or [])
    notifications.notify_environment(
        session,
        environment_config=_mapping(environment.config),
        event="deployment.blocked",
        message=f"{data.environment} {data.version} by {caller} blocked by {failed}",
        details={"gates": error.extra.get("gates", [])},
        link=f"/environments/{quote(data.environment)}",
    )


def approve(
    session: Session, *, deployment_id: uuid.UUID, caller: Principal, audit_context: AuditContext
) -> DeploymentDetail:
    """Approve a deployment waiting for it; the triggerer may not approve their own."""
    deployment = _require(session, deployment_id, for_update=True)
    run = _require_run(session, deployment_id)
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
    return _detail(deployment, run)


def reject(
    session: Session, *, deployment_id: uuid.UUID, caller: Principal, audit_context: AuditContext
) -> DeploymentDetail:
    """Reject a deployment waiting for approval: it fails without running."""
    deployment = _require(session, deployment_id, for_update=True)
    run = _require_run(session, deployment_id)
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
    return _detail(deployment, run)


def cancel(
    session: Session, *, deployment_id: uuid.UUID, caller: Principal, audit_context: AuditContext
) -> DeploymentDetail:
    """Cancel a pending or running deployment; a running step's process group is killed."""
    deployment = _require(session, deployment_id, for_update=True)
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
    return _detail(deployment, run)


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
    environment = repository.lock_environment(session, _require(session, deployment_id).environment)
    original = _require(session, deployment_id, for_update=True)
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
        results = gates.freezes(_freeze_facts(environment, target, now))
        failed = [r for r in results if not r.passed]
        if failed:
            raise GateBlocked(
                "rollback blocked by " + ", ".join(r.gate for r in failed),
                errors=[{"loc": ["gates", r.gate], "msg": r.reason} for r in failed],
                extra={"gates": [r.as_dict() for r in results]},
            )
    pipeline = _pipeline_of(environment)
    new = _new_deployment(
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
        not automatic and not force and bool(_mapping(environment.features).get("require_approval"))
    )
    repository.add_run(
        session,
        DeploymentRun(
            deployment_id=new.id,
            managed=pipeline is not None,
            pipeline=pipeline.model_dump(mode="json") if pipeline else None,
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
    return _detail(new, repository.get_run(session, new.id))


def _freeze_facts(
    environment: Environment, target: DeploymentConfig, now: datetime
) -> gates.GateFacts:
    features, windows, problems = _stored_gate_inputs(environment)
    return gates.GateFacts(
        environment=environment.name,
        version=target.version,
        commit_sha=target.commit_sha,
        features=features,
        freeze_windows=windows,
        now=now,
        staging_success=False,
        unresolved_critical=0,
        config_problems=problems,
    )


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


# --- logs -----------------------------------------------------------------------------------


def add_logs(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    logs: list[DeploymentLogCreate],
    caller: Principal | None = None,
) -> int:
    """Append a batch of log lines; all or nothing. Lines without a time get now, in order."""
    deployment = _require(session, deployment_id)
    if caller is not None and caller.role != "admin" and caller.name != deployment.triggered_by:
        raise Forbidden("only the deployment's triggerer, a service that created it, or an admin")
    now = utcnow()
    rows = [
        {
            "deployment_id": deployment_id,
            "level": log.level,
            "message": log.message,
            "timestamp": log.timestamp or now + i * MICROSECOND,
            "source": log.source,
            "metadata_": log.metadata,
        }
        for i, log in enumerate(logs)
    ]
    return repository.add_logs(session, rows)


def list_logs(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    filters: LogFilter | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> DeploymentLogPage:
    """A deployment's log lines, oldest first."""
    _require(session, deployment_id)
    page = repository.log_page(
        session,
        deployment_id=deployment_id,
        filters=filters,
        cursor=cursor,
        limit=clamp_limit(limit),
    )
    return DeploymentLogPage(items=[log_read(r) for r in page.items], next_cursor=page.next_cursor)


def log_read(row: DeploymentLog) -> DeploymentLogRead:
    assert row.timestamp is not None
    return DeploymentLogRead(
        id=row.id,
        deployment_id=row.deployment_id,
        level=row.level,
        message=row.message,
        timestamp=row.timestamp,
        source=row.source,
        metadata=row.metadata_,
    )


def log_line(session: Session, deployment_id: uuid.UUID, level: str, message: str) -> None:
    """One line from Shipboard itself (``source: shipboard``) in a deployment's log."""
    repository.add_logs(
        session,
        [
            {
                "id": uuid.uuid4(),
                "deployment_id": deployment_id,
                "level": level,
                "message": message,
                "timestamp": utcnow(),
                "source": "shipboard",
                "metadata_": None,
            }
        ],
    )


def _require(
    session: Session, deployment_id: uuid.UUID, *, for_update: bool = False
) -> DeploymentConfig:
    deployment = (
        repository.get_for_update(session, deployment_id)
        if for_update
        else repository.get(session, deployment_id)
    )
    if deployment is None:
        raise NotFound(f"deployment {deployment_id} does not exist")
    return deployment


def _require_run(session: Session, deployment_id: uuid.UUID) -> DeploymentRun:
    run = repository.get_run(session, deployment_id)
    if run is None:
        raise Conflict("this deployment was not created through Shipboard's API")
    return run
