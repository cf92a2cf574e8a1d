"""Reports' scheduled work: the reports ``config.reports`` asks for, queued on the elected node
as notification deliveries."""

from __future__ import annotations

from functools import partial

import structlog
from sqlalchemy.orm import Session

from shipboard.core.errors import ShipboardError
from shipboard.core.promql import PromStore
from shipboard.environments import repository as environments
from shipboard.environments.validation import stored_mapping
from shipboard.jobs.schedule import ScheduledTask, Tick, every
from shipboard.reports import scheduled as reports

log = structlog.get_logger("shipboard.scheduler")
LOOK_S = 5.0  # crons fire by the minute


def queue_scheduled_reports(session: Session, tick: Tick, *, store: PromStore | None = None) -> int:
    """Queue the reports whose cron fired since the task last ran (in the schedule's
    transaction, so each goes out once, even across a restart); how many deliveries. One bad
    schedule (or a metrics store that cannot answer) does not stop the others. The first run
    on a database only starts the clock."""
    if tick.last is None:
        return 0
    queued = 0
    for environment in environments.list_all(session):
        for schedule in reports.schedules(stored_mapping(environment.config)):
            if not reports.due(schedule, last=tick.last, now=tick.now):
                continue
            try:
                with session.begin_nested():
                    queued += reports.deliver(
                        session,
                        environment=environment.name,
                        schedule=schedule,
                        now=tick.now,
                        store=store,
                    )
            except (ValueError, ShipboardError) as exc:
                log.warning(
                    "scheduled_report_failed",
                    environment=environment.name,
                    kind=schedule.kind,
                    error=str(exc)[:300],
                )
    return queued


def scheduled(*, metrics_store: PromStore | None = None) -> list[ScheduledTask]:
    """The scheduled reports; monitoring reports read ``metrics_store`` when there is one."""
    return [
        ScheduledTask(
            "reports.scheduled",
            every(LOOK_S),
            run_in=partial(queue_scheduled_reports, store=metrics_store),
        )
    ]
