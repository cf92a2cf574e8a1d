"""Performance results: ingest (JSON batches and result files), regression tracking, listing.

Every ingest judges the newest result of each series it touched (``regression.evaluate``) and
keeps ``performance_regressions`` in step: a regression opens a row and notifies the environment's
channels; the first later result that is fine resolves it. The deployment gate reads the open rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.errors import InvalidInput
from shipboard.core.pagination import clamp_limit
from shipboard.core.time import utcnow
from shipboard.environments import repository as environments_repo
from shipboard.environments.service import require_environment, require_known_environments
from shipboard.environments.validation import stored_mapping
from shipboard.notifications.service import notify_environment
from shipboard.performance import importers, regression, repository
from shipboard.performance.models import PerformanceMetric, PerformanceRegression
from shipboard.performance.schemas import (
    IngestResult,
    PerformanceMetricCreate,
    PerformanceMetricFilter,
    PerformanceMetricPage,
    PerformanceMetricRead,
    RegressionList,
    RegressionRead,
    SeriesVerdict,
)

K6_PASS_THRESHOLD = 0.5


def record_results(
    session: Session,
    *,
    metrics: list[PerformanceMetricCreate],
    now: datetime | None = None,
    source_format: str | None = None,
) -> IngestResult:
    """Store a batch of results and judge every series it touched. An unknown environment
    rejects the whole batch."""
    require_known_environments(session, field="metrics", names=[m.environment for m in metrics])
    now = now or utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "name": m.name,
            "environment": m.environment,
            "timestamp": m.timestamp or now,
            "value": m.value,
            "unit": m.unit,
            "tags": m.tags,
            "benchmark": m.benchmark,
            "threshold": m.threshold,
        }
        for m in metrics
    ]
    repository.add_many(session, rows)
    session.flush()
    verdicts = _judge(session, rows, now)
    return IngestResult(
        accepted=len(rows),
        format=source_format,
        regressions=sum(1 for v in verdicts if v.status == "regression"),
        verdicts=verdicts,
    )


def import_file(
    session: Session,
    *,
    environment: str,
    data: bytes,
    version: str | None,
    commit_sha: str | None,
    audit_context: AuditContext,
) -> IngestResult:
    """A pytest-benchmark, k6 or CSV results file, the format detected from its content."""
    require_environment(session, environment)
    try:
        parsed = importers.parse_results(data, version=version, commit_sha=commit_sha)
    except importers.ImportFailed as exc:
        raise InvalidInput(
            f"cannot import the file: {exc}", errors=[{"loc": ["body", "file"], "msg": str(exc)}]
        ) from exc
    try:
        metrics = [
            PerformanceMetricCreate(
                name=r.name,
                environment=environment,
                timestamp=r.timestamp,
                value=r.value,
                unit=r.unit,
                tags=r.tags,
                # A k6 threshold's pass/fail outcome: a failed threshold is a regression.
                threshold=K6_PASS_THRESHOLD if r.unit == "pass" else None,
            )
            for r in parsed.results
        ]
    except ValueError as exc:  # a name or tag the file allowed but the API does not
        raise InvalidInput(f"cannot import the file: {exc}") from exc
    result = record_results(session, metrics=metrics, source_format=parsed.format)
    audit.record(
        session,
        context=audit_context,
        action="performance.import",
        target_type="environment",
        target_id=environment,
        details={
            "format": parsed.format,
            "results": result.accepted,
            "regressions": result.regressions,
            "version": version,
            "commit_sha": commit_sha,
        },
    )
    return result


def _judge(session: Session, rows: list[dict[str, Any]], now: datetime) -> list[SeriesVerdict]:
    """Judge the newest result of every series the batch touched. That is the series' tip in
    the database, so a backfilled old result never reopens history."""
    touched = {
        (row["environment"], regression.series_key(row["name"], row["tags"])): row for row in rows
    }
    environments = environments_repo.get_many(session, {e for e, _ in touched})
    histories: dict[tuple[str, str], list[PerformanceMetric]] = {}
    verdicts = []
    for (environment, key), row in sorted(touched.items(), key=lambda item: item[0]):
        if (environment, row["name"]) not in histories:
            histories[(environment, row["name"])] = repository.history(
                session, environment=environment, name=row["name"]
            )
        wanted = regression.series_tags(row["tags"])
        series = [
            m
            for m in histories[(environment, row["name"])]
            if regression.series_tags(m.tags) == wanted
        ]
        tip = series[-1]
        config = stored_mapping(environments[environment].config)
        rule = regression.rule_for(config.get("performance"), tip.name)
        verdict = regression.evaluate(
            [regression.Point(m.value, m.benchmark, m.threshold) for m in series],
            unit=tip.unit,
            rule=rule,
        )
        _track(session, environment, key, tip, verdict, config, now)
        verdicts.append(
            SeriesVerdict(
                name=tip.name,
                tags=tip.tags or {},
                status=verdict.status,
                model=verdict.model,
                value=verdict.value,
                baseline=verdict.baseline,
                delta_pct=verdict.delta_pct,
                p_value=verdict.p_value,
                reason=verdict.reason,
            )
        )
    return verdicts


def _track(
    session: Session,
    environment: str,
    key: str,
    tip: PerformanceMetric,
    verdict: regression.Verdict,
    config: dict[str, Any],
    now: datetime,
) -> None:
    """Open, refresh or resolve the series' regression row, and tell the channels on changes."""
    # Two ingests of one series must not both open a row.
    repository.lock_series(session, environment=environment, series_key=key)
    current = repository.open_regression(session, environment=environment, series_key=key)
    tags = tip.tags or {}
    figures = {
        "metric_id": tip.id,
        "version": tags.get("version"),
        "commit_sha": tags.get("commit") or tags.get("commit_sha"),
        "value": verdict.value,
        "current": verdict.current,
        "baseline": verdict.baseline,
        "delta_pct": verdict.delta_pct,
        "p_value": verdict.p_value,
        "model": verdict.model,
        "direction": verdict.direction,
        "reason": verdict.reason,
        "updated_at": now,
    }
    if verdict.regressed:
        if current is None:
            current = PerformanceRegression(
                id=uuid.uuid4(),
                environment=environment,
                name=tip.name,
                series_key=key,
                tags=regression.series_tags(tags),
                unit=tip.unit,
                status="open",
                detected_at=now,
                **figures,
            )
            session.add(current)
            session.flush()
            _notify(session, config, "performance.regression", current)
        else:
            for field, value in figures.items():
                setattr(current, field, value)
    elif verdict.status == "ok" and current is not None:
        current.status = "resolved"
        current.resolved_at = now
        for field, value in figures.items():
            setattr(current, field, value)
        session.flush()
        _notify(session, config, "performance.resolved", current)


def _notify(
    session: Session, config: dict[str, Any], event: str, row: PerformanceRegression
) -> None:
    what = "regressed" if event == "performance.regression" else "recovered"
    notify_environment(
        session,
        environment_config=config,
        event=event,
        message=f"{row.name} {what} in {row.environment}: {row.reason}",
        details={"regression": RegressionRead.model_validate(row).model_dump(mode="json")},
        link=f"/performance?{urlencode({'environment': row.environment})}",
    )


def list_regressions(
    session: Session,
    *,
    environment: str | None = None,
    version: str | None = None,
    status: str | None = "open",
    name: str | None = None,
) -> RegressionList:
    rows = repository.regressions(
        session, environment=environment, version=version, status=status, name=name
    )
    return RegressionList(items=[RegressionRead.model_validate(r) for r in rows])


def blocking_regressions(session: Session, *, environment: str, version: str) -> list[str]:
    """Names of the open regressions measured on ``version`` in ``environment``."""
    return repository.open_regression_names(session, environment=environment, version=version)


def list_results(
    session: Session,
    *,
    filters: PerformanceMetricFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> PerformanceMetricPage:
    """Results newest first."""
    page = repository.page(session, filters=filters, cursor=cursor, limit=clamp_limit(limit))
    return PerformanceMetricPage(
        items=[PerformanceMetricRead.model_validate(m) for m in page.items],
        next_cursor=page.next_cursor,
    )


def results_for(
    session: Session, *, environment: str, since: datetime, until: datetime
) -> Iterable[PerformanceMetric]:
    """Every result in a period, oldest first, for reports."""
    return repository.between(session, environment=environment, since=since, until=until)
