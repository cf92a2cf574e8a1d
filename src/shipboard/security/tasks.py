"""Security's scheduled work: the scans ``config.security.schedule`` asks for, requested on the
elected node (the worker's queue runs them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog
from croniter import croniter
from sqlalchemy.orm import Session

from shipboard.audit.service import AuditContext
from shipboard.core.crypto import Keyring
from shipboard.core.errors import ShipboardError
from shipboard.environments import repository as environments
from shipboard.environments.validation import stored_mapping
from shipboard.jobs.queue import JobKind
from shipboard.jobs.schedule import ScheduledTask, Tick, every
from shipboard.security.runs import request_scan, scan_job
from shipboard.security.schemas import ScanRun

log = structlog.get_logger("shipboard.scheduler")
LOOK_S = 5.0  # crons fire by the minute


def request_scheduled_scans(
    session: Session, tick: Tick, *, roots: list[str], protected: Sequence[Path] = ()
) -> int:
    """Request the scans whose cron fired since the task last ran (in the schedule's
    transaction, so they are requested once); how many. The first run on a database only
    starts the clock."""
    if tick.last is None:
        return 0
    last = tick.last.timestamp()
    requested = 0
    for environment in environments.list_all(session):
        security = stored_mapping(environment.config).get("security")
        schedule = stored_mapping(security).get("schedule") or []
        for entry in schedule if isinstance(schedule, list) else []:
            try:
                fired = croniter(str(entry["cron"]), tick.now).get_prev(float)
                if fired <= last:
                    continue
                data = ScanRun(
                    environment=environment.name, **{k: entry[k] for k in entry if k != "cron"}
                )
                with session.begin_nested():
                    request_scan(
                        session,
                        data=data,
                        roots=roots,
                        protected=protected,
                        requested_by="scheduler",
                        audit_context=AuditContext(actor="scheduler", actor_role="admin"),
                    )
                requested += 1
            except (KeyError, ValueError, TypeError, ShipboardError) as exc:
                log.warning(
                    "scheduled_scan_invalid", environment=environment.name, error=str(exc)[:300]
                )
    return requested


def jobs(
    *, roots: list[str], protected: Sequence[Path] = (), keyring: Keyring | None = None
) -> list[JobKind]:
    """Requested scans, run by any worker's queue loop with the real scanner."""
    return [scan_job(roots, protected, keyring=keyring)]


def scheduled(*, roots: list[str], protected: Sequence[Path] = ()) -> list[ScheduledTask]:
    return [
        ScheduledTask(
            "security.scheduled_scans",
            every(LOOK_S),
            run_in=lambda session, tick: request_scheduled_scans(
                session, tick, roots=roots, protected=protected
            ),
        )
    ]
