"""Reports' scheduled work: the reports ``config.reports`` asks for, as notification deliveries.

Two steps, so that no transaction is open while the metrics store is asked (up to its timeout):

1. On the elected node, the schedule's claiming transaction queues one job per report whose
   cron fired (``queue_scheduled_reports``): it commits with the schedule's record of the run,
   so each firing is queued once, even across a restart or on two nodes.
2. Any node's job loop runs the job (``deliver_report``): a monitoring report reads the store
   with no transaction open, then one short transaction builds the rest from the database,
   queues the deliveries and marks the job done together (``jobs.queue.complete``). A worker
   that dies before that commit leaves the job to the next; after it, there is nothing to redo.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.core.errors import MetricsStoreUnavailable
from shipboard.core.promql import PromStore
from shipboard.core.time import parse_duration, utcnow
from shipboard.db.engine import system_transaction
from shipboard.environments import repository as environments
from shipboard.environments.config_sections import ReportSchedule
from shipboard.environments.validation import stored_mapping
from shipboard.jobs.queue import Claimed, JobKind, complete, enqueue
from shipboard.jobs.schedule import ScheduledTask, Tick, every
from shipboard.reports import monitoring
from shipboard.reports import scheduled as reports

log = structlog.get_logger("shipboard.scheduler")
LOOK_S = 5.0  # crons fire by the minute
JOB = "reports.deliver"
# A store that cannot answer is asked again (the queue's backoff: 5 s, then 10 s); the last
# attempt sends the report saying why it has no metrics rather than not sending it.
ATTEMPTS = 3


def queue_scheduled_reports(session: Session, tick: Tick) -> int:
    """Queue a job for each report whose cron fired since the task last ran (in the schedule's
    transaction); how many. The first run on a database only starts the clock."""
    if tick.last is None:
        return 0
    queued = 0
    for environment in environments.list_all(session):
        for schedule in reports.schedules(stored_mapping(environment.config)):
            if not reports.due(schedule, last=tick.last, now=tick.now):
                continue
            payload = {
                "environment": environment.name,
                "schedule": schedule.model_dump(mode="json"),
                "at": tick.now.isoformat(),
            }
            enqueue(session, JOB, payload, max_attempts=ATTEMPTS)
            queued += 1
    return queued


def deliver_report(engine: Engine, claimed: Claimed, *, store: PromStore | None = None) -> int:
    """Build one queued report and queue its deliveries; how many (0 if the job was taken
    from this worker meanwhile)."""
    environment = str(claimed.payload["environment"])
    schedule = ReportSchedule.model_validate(claimed.payload["schedule"])
    at = datetime.fromisoformat(str(claimed.payload["at"]))
    metrics: monitoring.StoreMetrics | None = None
    if schedule.kind == "monitoring" and store is not None:
        period = parse_duration(schedule.period)
        try:
            metrics = monitoring.read_store(store, environment=environment, period=period)
        except MetricsStoreUnavailable as exc:
            if claimed.attempt < ATTEMPTS:
                raise
            until = utcnow()
            metrics = monitoring.StoreMetrics(since=until - period, until=until, error=exc.detail)
    with system_transaction(engine) as session:
        if not complete(session, claimed):
            return 0
        return reports.deliver(
            session, environment=environment, schedule=schedule, now=at, metrics=metrics
        )


def _gave_up(_session: Session, payload: dict[str, Any], error: str) -> None:
    schedule = payload.get("schedule")
    log.warning(
        "scheduled_report_failed",
        environment=payload.get("environment"),
        kind=schedule.get("kind") if isinstance(schedule, dict) else None,
        error=error[:300],
    )


def jobs(*, metrics_store: PromStore | None = None) -> list[JobKind]:
    """The queued reports, run by any node's job loop; monitoring reports read
    ``metrics_store`` when there is one."""

    def run(engine: Engine, claimed: Claimed) -> int:
        return deliver_report(engine, claimed, store=metrics_store)

    return [JobKind(JOB, run, give_up=_gave_up)]


def scheduled() -> list[ScheduledTask]:
    return [ScheduledTask("reports.scheduled", every(LOOK_S), run_in=queue_scheduled_reports)]
