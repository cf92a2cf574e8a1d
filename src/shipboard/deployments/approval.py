"""Approval: another deployer approves a deployment that waits for it, or rejects it.

Approval is the moment a person lets a deployment go, possibly hours after it was created: its
gates are judged again then, on the evidence of that moment (a freeze that began, a critical
finding found, a promotion check's metric gone bad), and a gate that fails now refuses the
approval exactly as it would have refused the create. The promotion checks' store is asked
before the approving request's transaction opens (``api.approval_answers``, with
``approval_asks``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth.schemas import Principal
from shipboard.core.errors import Conflict, Forbidden, GateBlocked
from shipboard.core.time import utcnow
from shipboard.db.engine import act_as_system
from shipboard.deployments import gates, promotion, repository
from shipboard.deployments.facts import freeze_facts, gate_facts
from shipboard.deployments.logs import log_line
from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.deployments.queries import detail, require, require_run
from shipboard.deployments.schemas import DeploymentCreate, DeploymentDetail
from shipboard.deployments.transitions import transition


def _awaits(deployment: DeploymentConfig, run: DeploymentRun | None, approver: str) -> bool:
    return (
        run is not None
        and run.needs_approval
        and run.approved_by is None
        and deployment.status == "pending"
        and approver != deployment.triggered_by
    )


def approval_asks(
    session: Session, *, deployment_id: uuid.UUID, approver: str
) -> list[promotion.Ask]:
    """What to ask the metrics store before ``approver`` approves the deployment (a read):
    its environment's promotion checks, or nothing where approval would not judge them (a
    forced deployment, a rollback) or will be refused anyway (``approve`` says why)."""
    deployment = repository.get(session, deployment_id)
    if deployment is None:
        return []
    run = repository.get_run(session, deployment_id)
    if not _awaits(deployment, run, approver) or run is None or run.forced:
        return []
    if deployment.rollback_from is not None:
        return []
    return promotion.asks(session, environment=deployment.environment, version=deployment.version)


def rejudge(
    session: Session,
    deployment: DeploymentConfig,
    run: DeploymentRun,
    *,
    promotion_answers: promotion.Answers,
    now: datetime,
) -> list[gates.GateResult] | None:
    """The gates the deployment passed when it was created, judged again as of ``now``: all
    of them for a deployment, the freezes for a person's rollback (which skips the gates about
    the version, as when it was created), none for a forced one (None: an admin's override
    stands)."""
    if run.forced:
        return None
    environment = repository.get_environment(session, deployment.environment)
    if environment is None:  # a deployment's environment cannot go (foreign key)
        raise Conflict(f"environment {deployment.environment!r} does not exist")
    if deployment.rollback_from is not None:
        return gates.freezes(freeze_facts(environment, deployment, now))
    data = DeploymentCreate.model_validate(
        {
            "environment": deployment.environment,
            "version": deployment.version,
            "commit_sha": deployment.commit_sha,
        }
    )
    facts = gate_facts(session, environment, data, now, promotion_answers=promotion_answers)
    return gates.evaluate(facts)


def approve(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    caller: Principal,
    audit_context: AuditContext,
    promotion_answers: promotion.Answers | None = None,
    now: datetime | None = None,
) -> DeploymentDetail:
    """Approve a deployment waiting for it; the triggerer may not approve their own. Its gates
    are judged again first (``rejudge``); one that fails refuses the approval (422, as on
    create) and the deployment keeps waiting, unchanged. ``promotion_answers``: the store's
    answers to ``approval_asks``, asked before this transaction; none given, the environment's
    promotion checks block (not asked: fail closed)."""
    now = now or utcnow()
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
    results = rejudge(session, deployment, run, promotion_answers=promotion_answers or {}, now=now)
    failed = [r for r in results or [] if not r.passed]
    if failed:
        # The reasons in the detail too: the web page, which shows only the detail, names
        # the numbers that changed since the create.
        raise GateBlocked(
            "approval blocked by " + "; ".join(f"{r.gate} ({r.reason})" for r in failed),
            errors=[{"loc": ["gates", r.gate], "msg": r.reason} for r in failed],
            extra={"gates": [r.as_dict() for r in results or []]},
        )
    run.approved_by = caller.name
    run.approved_at = now
    summary = ""
    if results is not None:
        run.gate_results = [r.as_dict() for r in results]
        summary = "; gates judged again: all passed"
    session.flush()
    log_line(session, deployment.id, "info", f"approved by {caller.name}{summary}")
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
