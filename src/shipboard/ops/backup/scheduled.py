"""Scheduled backups: writing one, and keeping only the newest archives. Which node takes a
slot is the job runtime's claim (``ops/tasks.py``)."""

from __future__ import annotations

from pathlib import Path

from shipboard.ops.backup.archive import ARCHIVE_PREFIX, ARCHIVE_SUFFIX
from shipboard.ops.backup.create import BackupReport, create_backup


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


def run_scheduled_backup(
    url: str, *, directory: Path, keep: int
) -> tuple[BackupReport, list[Path]]:
    """Write a timestamped archive into ``directory``, then keep only the newest ``keep``."""
    report = create_backup(url, directory=directory)
    return report, prune_backups(directory, keep)
