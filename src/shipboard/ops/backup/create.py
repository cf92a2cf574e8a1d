"""Creating a backup: a consistent snapshot of the live database, its checksums and the
archive, written whole or not at all."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from shipboard import __version__
from shipboard.config import normalize_database_url
from shipboard.core.errors import InvalidInput, ShipboardError
from shipboard.core.time import utcnow
from shipboard.db.engine import create_db_engine
from shipboard.db.types import format_utc
from shipboard.ops.backup.archive import (
    NO_ROOM,
    backup_file_name,
    gzip_file,
    hash_file,
    no_room_error,
    write_archive,
)
from shipboard.ops.backup.checksums import TableDigest
from shipboard.ops.backup.contents import (
    database_digests,
    partition_counts,
    plain_sqlite_engine,
    require_bypass_rls,
    schema_revision,
    sqlite_file,
)
from shipboard.ops.backup.manifest import PG_MEMBER, SQLITE_MEMBER, Manifest
from shipboard.ops.backup.pgtools import (
    describe_server,
    find_pg_tool,
    libpq_target,
    run_tool,
    server_major,
)
from shipboard.ops.backup.progress import SILENT, Progress


@dataclass
class BackupReport:
    path: Path
    manifest: Manifest
    bytes: int
    seconds: float


def create_backup(
    url: str,
    *,
    output: Path | None = None,
    directory: Path | None = None,
    progress: Progress = SILENT,
    now: datetime | None = None,
) -> BackupReport:
    """Back up the database at ``url`` into ``output`` (default: a timestamped file in
    ``directory``). Consistent while the server runs; the archive appears whole or not at all."""
    started = time.monotonic()
    moment = now or utcnow()
    if output is None:
        if directory is None:
            raise InvalidInput("no output file and no backup directory")
        output = directory / backup_file_name(moment)
    url = normalize_database_url(url)
    if output.is_dir():
        raise InvalidInput(f"{output} is a directory: name the archive file to write")
    regular = not output.exists() or output.is_file()
    if regular:
        output.parent.mkdir(parents=True, exist_ok=True)
    # The scratch copy goes beside the output: the disk chosen for backups has room for one.
    scratch_parent = output.parent if regular else None
    try:
        with tempfile.TemporaryDirectory(prefix=".shipboard-backup-", dir=scratch_parent) as tmp:
            if url.startswith("sqlite"):
                manifest, dump = _create_sqlite(url, Path(tmp), progress=progress, now=moment)
            else:
                manifest, dump = _create_postgres(url, Path(tmp), progress=progress, now=moment)
            size = write_archive(output, manifest, dump, progress=progress)
    except OSError as exc:
        if exc.errno in NO_ROOM:
            raise no_room_error(exc, output) from exc
        raise
    except sqlite3.OperationalError as exc:
        # SQLite reports ENOSPC as SQLITE_FULL and other failed writes (EFBIG) as I/O errors.
        name = str(getattr(exc, "sqlite_errorname", ""))
        if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
            raise ShipboardError(
                f"backup not written: {exc} while copying the database beside {output} (is the "
                f"disk full?); {output} was left as it was"
            ) from exc
        raise
    return BackupReport(
        path=output, manifest=manifest, bytes=size, seconds=time.monotonic() - started
    )


def _finish_manifest(
    *,
    backend: str,
    revision: str | None,
    tables: dict[str, TableDigest],
    partitions: dict[str, int],
    server_version: str,
    dump: Path,
    now: datetime,
) -> Manifest:
    if revision is None:
        raise InvalidInput("the database has no Shipboard schema (run `shipboard db upgrade`)")
    return Manifest(
        backend=backend,
        schema_revision=revision,
        created_at=format_utc(now),
        shipboard_version=__version__,
        server_version=server_version,
        dump_name=dump.name,
        dump_bytes=dump.stat().st_size,
        dump_sha256=hash_file(dump),
        tables=tables,
        partitions=partitions,
    )


def _create_sqlite(
    url: str, tmp: Path, *, progress: Progress, now: datetime
) -> tuple[Manifest, Path]:
    source = sqlite_file(url)
    if not source.is_file():
        raise InvalidInput(f"no SQLite database at {source}")
    snapshot = tmp / "database.sqlite"
    task = progress.task("copying the database", total=None)
    engine = create_db_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            live = conn.connection.dbapi_connection
            assert isinstance(live, sqlite3.Connection)
            copy = sqlite3.connect(snapshot)
            try:
                # In one step: a step-wise copy restarts whenever another connection writes, so
                # on a busy server it might never end. One step reads one consistent snapshot
                # while writers go on in the WAL.
                live.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
    finally:
        engine.dispose()
        task.finish()
    scratch = plain_sqlite_engine(snapshot)
    try:
        with scratch.connect() as conn:
            revision = schema_revision(conn)
            tables = database_digests(conn, progress=progress)
            server_version = describe_server(conn)
    finally:
        scratch.dispose()
    dump = tmp / SQLITE_MEMBER
    gzip_file(snapshot, dump, progress=progress)
    snapshot.unlink()
    manifest = _finish_manifest(
        backend="sqlite",
        revision=revision,
        tables=tables,
        partitions={},
        server_version=server_version,
        dump=dump,
        now=now,
    )
    return manifest, dump


def _create_postgres(
    url: str, tmp: Path, *, progress: Progress, now: datetime
) -> tuple[Manifest, Path]:
    dump = tmp / PG_MEMBER
    engine = create_db_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            conn.begin()
            conn.execute(sa.text("SET TRANSACTION READ ONLY"))
            require_bypass_rls(conn, what="backup")
            tool = find_pg_tool("pg_dump", server_major(conn))
            # pg_dump reads the snapshot this transaction exported, so the checksums below
            # describe exactly the rows it dumps, however busy the server is meanwhile.
            snapshot = str(conn.scalar(sa.text("SELECT pg_export_snapshot()")))
            data_tables = int(
                conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace "
                        "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                    )
                )
                or 0
            )
            conninfo, env = libpq_target(url)
            task = progress.task("pg_dump", total=data_tables)
            failure: list[BaseException] = []

            def dump_it() -> None:
                try:
                    run_tool(
                        [
                            tool,
                            "--format=custom",
                            "--no-password",
                            "--verbose",
                            f"--snapshot={snapshot}",
                            f"--file={dump}",
                            f"--dbname={conninfo}",
                        ],
                        env,
                        task=task,
                        counts=lambda line: "dumping contents of table" in line,
                    )
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    failure.append(exc)
                finally:
                    task.finish()

            worker = threading.Thread(target=dump_it, name="shipboard-pg-dump", daemon=True)
            worker.start()
            try:
                revision = schema_revision(conn)
                tables = database_digests(conn, progress=progress)
                partitions = partition_counts(conn)
                server_version = describe_server(conn)
            finally:
                # The snapshot must outlive pg_dump's start: hold the transaction until it ends.
                worker.join()
            conn.rollback()
            if failure:
                raise failure[0]
    finally:
        engine.dispose()
    manifest = _finish_manifest(
        backend="postgresql",
        revision=revision,
        tables=tables,
        partitions=partitions,
        server_version=server_version,
        dump=dump,
        now=now,
    )
    return manifest, dump
