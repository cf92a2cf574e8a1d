"""Creating a deployment: the frequency limit, the gates, the run it gets, and telling the
environment's channels when the gates blocked it."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from urllib.parse import quote

from pydantic import ValidationError
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth.schemas import Principal
from shipboard.core import sealing
from shipboard.core.errors import Forbidden, GateBlocked, InvalidInput, NotFound, RateLimited
from shipboard.core.time import utcnow
from shipboard.deployments import gates, promotion, repository
from shipboard.deployments.facts import gate_facts
from shipboard.deployments.logs import log_line
from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.deployments.queries import detail
from shipboard.deployments.schemas import DeploymentCreate, DeploymentDetail
from shipboard.environments import validation
from shipboard.environments.models import Environment
from shipboard.environments.pipeline import Pipeline
from shipboard.environments.validation import stored_mapping
from shipboard.notifications import service as notifications


def create_deployment(
    session: Session,
    *,
    data: DeploymentCreate,
    caller: Principal,
    audit_context: AuditContext,
    promotion_answers: promotion.Answers | None = None,
    now: datetime | None = None,
) -> DeploymentDetail:
    """Record a deployment in ``pending`` after the frequency limit and the gates;
    ``promotion_answers`` are the metrics store's answers to the environment's promotion checks
    (``promotion.ask_all``, asked before this transaction). A caller that asked nothing gives
    none, and an environment with promotion checks then blocks (not asked: fail closed)."""
    now = now or utcnow()
    if data.force and caller.role != "admin":
        raise Forbidden("only an admin may force a deployment past its gates")
    environment = repository.lock_environment(session, data.environment)
    if environment is None:
        raise NotFound(f"environment {data.environment!r} does not exist")
    check_frequency(session, environment, now)
    pipeline = pipeline_of(environment)
    results: list[gates.GateResult] = []
    if not data.force:
        facts = gate_facts(
            session, environment, data, now, promotion_answers=promotion_answers or {}
        )
        results = gates.evaluate(facts)
        failed = [r for r in results if not r.passed]
        if failed:
            raise GateBlocked(
                "blocked by " + ", ".join(r.gate for r in failed),
                errors=[{"loc": ["gates", r.gate], "msg": r.reason} for r in failed],
                extra={"gates": [r.as_dict() for r in results]},
            )
    deployment = new_deployment(
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
        pipeline_secrets=pipeline_secrets(environment) if pipeline else None,
        commit_timestamp=data.commit_timestamp,
        forced=data.force,
        gate_results=[r.as_dict() for r in results],
        analysis=[],
        needs_approval=bool(stored_mapping(environment.features).get("require_approval")),
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
    return detail(deployment, run)


def new_deployment(
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


def pipeline_of(environment: Environment) -> Pipeline | None:
    raw = stored_mapping(environment.config).get("pipeline")
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


def pipeline_secrets(environment: Environment) -> dict[str, str]:
    """The pipeline's credentials as its environment holds them, still encrypted: the worker
    decrypts them (``sealing.unseal``) when it runs the steps; nothing here needs the key."""
    return sealing.under(environment.config_secrets, ("pipeline",))


def check_frequency(session: Session, environment: Environment, now: datetime) -> None:
    limit = stored_mapping(environment.limits).get("max_deployment_frequency")
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
        environment_config=stored_mapping(environment.config),
        event="deployment.blocked",
        message=f"{data.environment} {data.version} by {caller} blocked by {failed}",
        details={"gates": error.extra.get("gates", [])},
        link=f"/environments/{quote(data.environment)}",
    )
