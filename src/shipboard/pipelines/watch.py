"""The post-deploy watch: one measurement of every check per interval, then a verdict that
passes the deployment or rolls it back (the statistics are ``analysis``, pure)."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.alerting import external
from shipboard.core.comparisons import OPS
from shipboard.core.promql import PromStore, ask_all, render
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.deployments import service as deployments
from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.environments.pipeline import Pipeline, WatchCheck
from shipboard.monitoring import repository as monitoring_repo
from shipboard.pipelines import analysis, repository
from shipboard.pipelines.recovery import auto_rollback

log = structlog.get_logger("shipboard.watch")


def watch_due(engine: Engine, *, store: PromStore | None = None) -> int:
    """Take one measurement of every check of every watch that is due; act on verdicts.

    PromQL checks ask the metrics store first, outside any transaction (a slow store must not
    hold SQLite's write lock); the measurements are then judged in one transaction."""
    now = utcnow()
    with system_transaction(engine) as session:
        asks = {
            deployment.id: _promql_asks(deployment, run)
            for deployment, run in repository.due_watches(session, now)
        }
    # Every check of every due watch at once, the round bounded by one store timeout: a store
    # that hangs must not cost a timeout per check per deployment.
    questions = {
        (deployment_id, name): query
        for deployment_id, queries in asks.items()
        for name, query in queries
    }
    answers: dict[uuid.UUID, dict[str, list[float] | str]] = {}
    if questions:
        within = store.settings.timeout_s if store is not None else 0.0
        for (deployment_id, name), answer in ask_all(
            store, questions, at=now, within_s=within
        ).items():
            answers.setdefault(deployment_id, {})[name] = (
                answer if isinstance(answer, str) else [s.value for s in answer]
            )
    evaluated = 0
    with system_transaction(engine) as session:
        for deployment, run in repository.due_watches(session, now):
            evaluated += 1
            evaluate_watch(session, deployment, run, now, promql=answers.get(deployment.id, {}))
    return evaluated


def _promql_asks(deployment: DeploymentConfig, run: DeploymentRun) -> list[tuple[str, str]]:
    """The rendered queries of a watch's PromQL checks, by check name."""
    if run.pipeline is None or deployment.status != "success":
        return []
    watch = Pipeline.model_validate(run.pipeline).watch
    if watch is None:
        return []
    started = run.deploy_started_at or deployment.completed_at
    if started is None:
        return []
    variables = {
        "environment": deployment.environment,
        "version": deployment.version,
        "deployment_id": str(deployment.id),
        "deployment_started_at": f"{started.timestamp():.3f}",
        "deployment_completed_at": (
            f"{deployment.completed_at.timestamp():.3f}" if deployment.completed_at else ""
        ),
    }
    return [
        (check.name, render(check.query, variables))
        for check in watch.checks
        if check.kind == "promql" and check.query
    ]


def _promql(
    name: str, answer: list[float] | str | None, *, op: str, value: float
) -> analysis.Measurement:
    if answer is None:
        return analysis.Measurement(name, "Inconclusive", "not measured this round")
    if isinstance(answer, str):
        return analysis.Measurement(name, "Inconclusive", answer)
    if len(answer) > 1:
        return analysis.Measurement(
            name,
            "Inconclusive",
            f"the query returned {len(answer)} series; aggregate it to one (sum, max …)",
        )
    if not answer or math.isnan(answer[0]):
        return analysis.Measurement(name, "Inconclusive", "the query returned no value")
    measured = answer[0]
    ok = OPS[op](measured, value)
    return analysis.Measurement(
        name,
        "Successful" if ok else "Failed",
        f"result = {measured:.6g}; expected {op} {value:g}",
        # ±Inf (errors / requests with no requests) is shown in the reason: the verdict is
        # stored as JSON, and PostgreSQL's jsonb holds no Infinity.
        value=measured if math.isfinite(measured) else None,
        samples=1,
    )


def evaluate_watch(
    session: Session,
    deployment: DeploymentConfig,
    run: DeploymentRun,
    now: datetime,
    *,
    promql: dict[str, list[float] | str] | None = None,
) -> None:
    """One round of a deployment's watch: measure, log, and decide whether it goes on."""
    assert run.pipeline is not None
    watch = Pipeline.model_validate(run.pipeline).watch
    assert watch is not None
    assert deployment.completed_at is not None
    if deployment.status != "success":
        run.watch_state = "stopped"
        return
    interval = timedelta(seconds=watch.interval_s)
    window = timedelta(seconds=watch.window_s)
    deploy_start = run.deploy_started_at or deployment.completed_at
    # Contiguous intervals: each measurement starts where the previous one ended, so a point
    # that lands while the worker is busy elsewhere is still counted.
    previous = [e["at"] for e in run.analysis or [] if e.get("kind") == "watch"]
    since = datetime.fromisoformat(previous[-1]) if previous else deployment.completed_at
    taken = [
        {
            "kind": "watch",
            "at": now.isoformat(),
            **_measure(
                session,
                check,
                deployment,
                since=since,
                until=now,
                deploy_start=deploy_start,
                window=window,
                promql=promql or {},
            ).as_dict(),
        }
        for check in watch.checks
    ]
    history = [*(run.analysis or []), *taken]
    run.analysis = history
    for entry in taken:
        level = "error" if entry["result"] == "Failed" else "info"
        deployments.log_line(
            session,
            deployment.id,
            level,
            f"watch {entry['check']}: {entry['result']} ({entry['reason']})",
        )
    firing = external.firing_since(session, environment=deployment.environment, since=deploy_start)
    if firing:
        names = ", ".join(sorted({alert.alertname for alert in firing}))
        run.analysis = [
            *history,
            {
                "kind": "watch",
                "at": now.isoformat(),
                "check": "external alerts",
                "result": "Failed",
                "reason": f"Alertmanager alert firing in {deployment.environment}: {names}",
                "alerts": [
                    {"alertname": a.alertname, "fingerprint": a.fingerprint, "labels": a.labels}
                    for a in firing
                ],
            },
        ]
        run.watch_state = "failed"
        run.watch_next_at = None
        reason = f"watch failed: external alert firing: {names}"
        deployments.log_line(session, deployment.id, "error", reason)
        auto_rollback(session, deployment, reason=reason)
        return
    watch_entries = [e for e in history if e.get("kind") == "watch"]
    if not analysis.verdict(watch_entries, watch.failure_limit):
        run.watch_state = "failed"
        run.watch_next_at = None
        failures = sum(1 for e in watch_entries if e["result"] == "Failed")
        reason = f"watch failed: {failures} failed measurement(s), limit {watch.failure_limit}"
        deployments.log_line(session, deployment.id, "error", reason)
        auto_rollback(session, deployment, reason=reason)
    elif now >= deployment.completed_at + window:
        run.watch_state = "passed"
        run.watch_next_at = None
        deployments.log_line(session, deployment.id, "info", "watch passed")
    else:
        run.watch_next_at = now + interval


def _measure(
    session: Session,
    check: WatchCheck,
    deployment: DeploymentConfig,
    *,
    since: datetime,
    until: datetime,
    deploy_start: datetime,
    window: timedelta,
    promql: dict[str, list[float] | str],
) -> analysis.Measurement:
    """One measurement of one check over ``since``–``until``."""
    now = until
    if check.kind == "promql":
        measurement = _promql(
            check.name,
            promql.get(check.name),
            op=check.op,
            value=check.value if check.value is not None else 0.0,
        )
    elif check.kind == "threshold":
        assert check.metric is not None
        points = monitoring_repo.values(
            session,
            environment=deployment.environment,
            name=check.metric,
            tags=check.tags,
            since=since,
            until=now,
        )
        measurement = analysis.threshold(
            check.name,
            points,
            aggregate=check.aggregate,
            op=check.op,
            value=check.value if check.value is not None else 0.0,
        )
    else:
        assert check.metric is not None
        before = monitoring_repo.values(
            session,
            environment=deployment.environment,
            name=check.metric,
            tags=check.tags,
            since=deploy_start - window,
            until=deploy_start,
        )
        after = monitoring_repo.values(
            session,
            environment=deployment.environment,
            name=check.metric,
            tags=check.tags,
            since=deployment.completed_at or deploy_start,
            until=now,
        )
        measurement = analysis.compare(
            check.name,
            before,
            after,
            direction=check.direction,
            min_effect=check.min_effect,
            alpha=check.alpha,
        )
    return measurement
