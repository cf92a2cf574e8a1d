"""Scheduled backups: which node takes a slot, and keeping only the newest archives."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.audit import service as audit
from shipboard.audit.models import AuditEvent
from shipboard.audit.service import AuditContext
from shipboard.db.engine import is_postgres, system_transaction
from shipboard.db.types import format_utc
from shipboard.ops.backup.archive import ARCHIVE_PREFIX, ARCHIVE_SUFFIX
from shipboard.ops.backup.create import BackupReport, create_backup

# A PostgreSQL advisory lock key beside the scheduler's and the migrations'.
SCHEDULED_BACKUP_LOCK = 0x5B1B0A51


def archives_in(directory: Path) -> list[Path]:
    """Shipboard's archives in ``directory``, oldest first (their names carry the time)."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.name.startswith(ARCHIVE_PREFIX) and p.name.endswith(ARCHIVE_SUFFIX)
    )


def prune_backups(directory: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` archives; other files are never touched."""
    archives = archives_in(directory)
    doomed = archives[: max(len(archives) - max(keep, 1), 0)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def claim_scheduled_backup(engine: Engine, slot: datetime) -> bool:
    """Whether this node takes the backup due at ``slot``. The claim is an audit event, so
    each slot is backed up once even when leadership moves between nodes around it.

    This is the one place that decides who runs a slot: the job runtime's claim replaces it."""
    key = format_utc(slot)
    with system_transaction(engine) as session:
        if is_postgres(session):
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEDULED_BACKUP_LOCK)))
        taken = session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "backup.scheduled", AuditEvent.target_id == key)
        )
        if taken:
            return False
        audit.record(
            session,
            context=AuditContext(actor="scheduler", actor_role="admin"),
            action="backup.scheduled",
            target_type="backup",
            target_id=key,
        )
    return True


def run_scheduled_backup(
    url: str, *, directory: Path, keep: int
) -> tuple[BackupReport, list[Path]]:
    """Write a timestamped archive into ``directory``, then keep only the newest ``keep``."""
    report = create_backup(url, directory=directory)
    return report, prune_backups(directory, keep)
