"""The post-deploy watch: one measurement of every check per interval, then a verdict that
passes the deployment or rolls it back (the statistics are ``analysis``, pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.alerting import external
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.deployments import service as deployments
from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.environments.pipeline import Pipeline
from shipboard.monitoring import repository as monitoring_repo
from shipboard.pipelines import analysis, repository
from shipboard.pipelines.recovery import auto_rollback


def watch_due(engine: Engine) -> int:
    """Take one measurement of every check of every watch that is due; act on verdicts."""
    evaluated = 0
    with system_transaction(engine) as session:
        now = utcnow()
        for deployment, run in repository.due_watches(session, now):
            evaluated += 1
            evaluate_watch(session, deployment, run, now)
    return evaluated


def evaluate_watch(
    session: Session, deployment: DeploymentConfig, run: DeploymentRun, now: datetime
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
    taken = []
    for check in watch.checks:
        if check.kind == "threshold":
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
                since=deployment.completed_at,
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
        taken.append({"kind": "watch", "at": now.isoformat(), **measurement.as_dict()})
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
