"""Verifying an archive without touching a live database: restored into a scratch database
and checked against its manifest."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shipboard.config import normalize_database_url
from shipboard.core.errors import InvalidInput
from shipboard.db.engine import create_db_engine
from shipboard.ops.backup.archive import gunzip_file, read_archive
from shipboard.ops.backup.contents import digest_database
from shipboard.ops.backup.manifest import manifest_problems
from shipboard.ops.backup.progress import SILENT, Progress
from shipboard.ops.backup.restore import CheckReport, pg_restore


def verify_backup(
    archive: Path, *, scratch_url: str | None = None, progress: Progress = SILENT
) -> CheckReport:
    """Check ``archive`` without touching any live database: its dump against the manifest's
    SHA-256, then the dump restored to a scratch database (a temporary SQLite file, or a
    temporary database on the PostgreSQL server at ``scratch_url``, dropped afterwards) against
    the manifest's counts and checksums. Raises InvalidInput listing every difference."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shipboard-verify-") as tmp:
        manifest, dump = read_archive(archive, Path(tmp), progress=progress)
        if manifest.backend == "sqlite":
            snapshot = Path(tmp) / "database.sqlite"
            gunzip_file(dump, snapshot)
            dump.unlink()
            problems = _sqlite_integrity(snapshot)
            if not problems:
                problems = manifest_problems(
                    manifest, *digest_database(f"sqlite:///{snapshot}", progress=progress)
                )
        else:
            if not scratch_url or not normalize_database_url(scratch_url).startswith("postgresql"):
                raise InvalidInput(
                    f"{archive} is a PostgreSQL backup: verifying it restores it into a scratch "
                    "database, which needs a PostgreSQL server (set SHIPBOARD_DATABASE_URL or "
                    "pass --scratch-url)"
                )
            with scratch_database(scratch_url) as scratch:
                pg_restore(dump, scratch, progress=progress)
                problems = manifest_problems(manifest, *digest_database(scratch, progress=progress))
    if problems:
        raise InvalidInput(f"{archive} failed verification: " + "; ".join(problems))
    return CheckReport(path=archive, manifest=manifest, seconds=time.monotonic() - started)


def _sqlite_integrity(path: Path) -> list[str]:
    try:
        connection = sqlite3.connect(path)
        try:
            rows = [r[0] for r in connection.execute("PRAGMA integrity_check")]
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        return [f"the SQLite file is damaged: {exc}"]
    return [] if rows == ["ok"] else [f"SQLite integrity check: {'; '.join(rows[:5])}"]


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``server_url``, dropped at the end."""
    name = f"shipboard_scratch_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(server_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
        try:
            yield (
                make_url(normalize_database_url(server_url))
                .set(database=name)
                .render_as_string(hide_password=False)
            )
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
