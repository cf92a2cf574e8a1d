"""The facts the gates decide on (``gates.py`` is pure), gathered from the stored environment
and from the domains below deployments: staging's history, findings, performance regressions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shipboard.deployments import gates, promotion, repository
from shipboard.deployments.models import DeploymentConfig
from shipboard.deployments.schemas import DeploymentCreate
from shipboard.environments import validation
from shipboard.environments.models import Environment
from shipboard.environments.validation import stored_mapping
from shipboard.performance.service import blocking_regressions
from shipboard.security import service as security


def stored_gate_inputs(
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
    windows = stored_mapping(environment.config).get("freeze_windows")
    # A flag that is not a boolean counts as on: the configuration gate names it, and reading
    # "maybe" as off would open a gate that should block.
    features = {
        k: v if isinstance(v, bool) else True
        for k, v in stored_mapping(environment.features).items()
    }
    return features, list(windows) if isinstance(windows, list) else [], problems


def gate_facts(
    session: Session,
    environment: Environment,
    data: DeploymentCreate,
    now: datetime,
    *,
    promotion_answers: promotion.Answers | None = None,
) -> gates.GateFacts:
    """What the gates decide on. ``promotion_answers``: the metrics store's answers to the
    environment's promotion checks, asked before the transaction; None leaves the checks out
    (a deployment recorded from CI, which no gate blocks, is not held to them)."""
    features, windows, problems = stored_gate_inputs(environment)
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
        security.count_unresolved(session, environment=environment.name, severity="critical")
        if gates.feature(facts, "block_on_critical_findings")
        else 0
    )
    # Evidence from staging gates production only: development must stay free to try things.
    regressions = (
        blocking_regressions(session, environment="staging", version=data.version)
        if environment.name == "production"
        else []
    )
    # Counted in the query: filtered after a limit, the oldest (the overdue ones) fell off.
    overdue_high = (
        security.count_unresolved(
            session, environment=environment.name, severity="high", overdue=True
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
            "store_checks": []
            if promotion_answers is None
            else promotion.store_checks(environment, data.version, promotion_answers),
        }
    )


def freeze_facts(
    environment: Environment, target: DeploymentConfig, now: datetime
) -> gates.GateFacts:
    features, windows, problems = stored_gate_inputs(environment)
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
