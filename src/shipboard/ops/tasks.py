"""Operations' scheduled work, on the elected node: backups on ``SHIPBOARD_BACKUP_SCHEDULE``,
and hourly retention and storage-quota checks."""

from __future__ import annotations

import threading
from pathlib import Path

import structlog
from sqlalchemy.engine import Engine

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.db.engine import system_transaction
from shipboard.db.types import format_utc
from shipboard.jobs.schedule import ScheduledTask, Tick, cron, every
from shipboard.ops import retention
from shipboard.ops.backup import scheduled as backup
from shipboard.ops.quotas import check_storage_quotas

log = structlog.get_logger("shipboard.scheduler")
SCHEDULER = AuditContext(actor="scheduler", actor_role="admin")
RETENTION_FIRST_AFTER_S = 60.0
RETENTION_INTERVAL_S = 3600.0


def enforce_retention(engine: Engine) -> None:
    """Trim metrics and logs past each environment's horizon, then check storage quotas."""
    retention.enforce(engine)
    with system_transaction(engine) as session:
        check_storage_quotas(session, audit_context=SCHEDULER)


class ScheduledBackup:
    """Takes the backup in a thread of its own (alert evaluation must not wait for a dump),
    then keeps the newest ``keep``. Which node takes a due backup is the schedule's claim."""

    def __init__(self, engine: Engine, *, directory: Path, keep: int) -> None:
        self.engine = engine
        self.directory = directory
        self.keep = keep
        self.thread: threading.Thread | None = None

    def __call__(self, tick: Tick) -> bool:
        slot = format_utc(tick.due)
        if self.thread is not None and self.thread.is_alive():
            log.warning("scheduled_backup_skipped", slot=slot, reason="still running")
            return False
        with system_transaction(self.engine) as session:  # a record, not a lock
            audit.record(
                session,
                context=SCHEDULER,
                action="backup.scheduled",
                target_type="backup",
                target_id=slot,
            )
        url = self.engine.url.render_as_string(hide_password=False)
        directory, keep = self.directory, self.keep

        def run() -> None:
            try:
                report, pruned = backup.run_scheduled_backup(url, directory=directory, keep=keep)
                log.info(
                    "scheduled_backup_written",
                    path=str(report.path),
                    bytes=report.bytes,
                    seconds=round(report.seconds, 1),
                    pruned=[p.name for p in pruned],
                )
            except Exception:
                log.exception("scheduled_backup_failed", slot=slot)

        self.thread = threading.Thread(target=run, name="shipboard-backup", daemon=True)
        self.thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


def scheduled(
    engine: Engine,
    *,
    backup_schedule: str | None = None,
    backup_dir: Path | None = None,
    backup_keep: int = 7,
) -> list[ScheduledTask]:
    tasks = [
        ScheduledTask(
            "ops.retention",
            every(RETENTION_INTERVAL_S, first_after=RETENTION_FIRST_AFTER_S),
            run=lambda _tick: enforce_retention(engine),
            lease_s=RETENTION_INTERVAL_S,
        )
    ]
    if backup_schedule and backup_dir is not None:
        tasks.append(
            ScheduledTask(
                "ops.backup",
                cron(backup_schedule),
                run=ScheduledBackup(engine, directory=backup_dir, keep=backup_keep),
            )
        )
    return tasks
