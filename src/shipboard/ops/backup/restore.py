"""Restoring an archive into a database (every Shipboard process stopped), checked against
its manifest afterwards."""

from __future__ import annotations

import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from shipboard import __version__
from shipboard.config import normalize_database_url
from shipboard.core.errors import Conflict, InvalidInput, ShipboardError
from shipboard.db import migrate
from shipboard.db.engine import APP_ROLE, create_db_engine
from shipboard.ops.backup.archive import gunzip_file, read_archive
from shipboard.ops.backup.contents import (
    digest_database,
    plain_sqlite_engine,
    require_bypass_rls,
    sqlite_file,
    tables_with_rows,
)
from shipboard.ops.backup.manifest import Manifest, manifest_problems
from shipboard.ops.backup.pgtools import find_pg_tool, libpq_target, run_tool, server_major
from shipboard.ops.backup.progress import SILENT, Progress

RESTORE_LOCK_WAIT_S = 15


def ensure_app_role(conn: sa.Connection) -> None:
    """The restricted role the dump grants to is cluster-wide: create it on a new cluster, and
    let the connecting user switch to it as the migrations do."""
    conn.execute(
        sa.text(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') "
            f"THEN CREATE ROLE {APP_ROLE} NOLOGIN; END IF; END $$"
        )
    )
    member = conn.scalar(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = :role "
            "AND u.rolname = current_user)"
        ),
        {"role": APP_ROLE},
    )
    if not member:
        conn.execute(sa.text(f"GRANT {APP_ROLE} TO CURRENT_USER"))


def clear_postgres_schema(conn: sa.Connection) -> None:
    """Drop every table, view, sequence, type and function of the current schema that no
    extension owns: what a restore replaces. Partitions go with their parents."""
    owned_by_extension = (
        "EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"
    )
    quote = conn.dialect.identifier_preparer.quote
    relations = conn.execute(
        sa.text(
            "SELECT c.relname, c.relkind FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
            "AND NOT c.relispartition AND NOT " + owned_by_extension.format(oid="c.oid")
        )
    ).all()
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    for name, kind in relations:
        conn.execute(sa.text(f"DROP {kinds[kind]} IF EXISTS {quote(name)} CASCADE"))
    types = conn.scalars(
        sa.text(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd', 'c') "
            "AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') "
            "AND NOT " + owned_by_extension.format(oid="t.oid")
        )
    ).all()
    for name in types:
        conn.execute(sa.text(f"DROP TYPE IF EXISTS {quote(name)} CASCADE"))
    functions = conn.scalars(
        sa.text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND NOT " + owned_by_extension.format(oid="p.oid")
        )
    ).all()
    for signature in functions:
        # regprocedure's text is already a quoted, schema-resolved signature.
        conn.execute(sa.text(f"DROP ROUTINE IF EXISTS {signature} CASCADE"))


def pg_restore(dump: Path, url: str, *, progress: Progress) -> None:
    engine = create_db_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            tool = find_pg_tool("pg_restore", server_major(conn))
            ensure_app_role(conn)
    finally:
        engine.dispose()
    entries = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
        [tool, "--list", str(dump)], capture_output=True, text=True, check=False, timeout=300
    )
    if entries.returncode != 0:
        raise InvalidInput(f"{dump.name} is not a pg_dump archive: {entries.stderr.strip()[:300]}")
    total = sum(1 for line in entries.stdout.splitlines() if line and not line.startswith(";"))
    conninfo, env = libpq_target(url)
    task = progress.task("pg_restore", total=total or None)
    try:
        run_tool(
            [
                tool,
                "--format=custom",
                # Objects belong to whoever restores (the URL's user), as after the migrations.
                "--no-owner",
                "--exit-on-error",
                "--single-transaction",
                "--no-password",
                "--verbose",
                f"--dbname={conninfo}",
                str(dump),
            ],
            env,
            task=task,
            counts=lambda line: (
                line.startswith("pg_restore: creating") or line.startswith("pg_restore: processing")
            ),
        )
    finally:
        task.finish()


def _restore_sqlite_file(snapshot: Path, target: Path, *, progress: Progress) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(snapshot)
    destination = sqlite3.connect(target, timeout=30)
    total_pages = int(source.execute("PRAGMA page_count").fetchone()[0])
    task = progress.task("restoring", total=total_pages or None)
    pages = {"done": 0}

    def step(_status: int, remaining: int, total: int) -> None:
        done = total - remaining
        task.advance(done - pages["done"])
        pages["done"] = done

    try:
        destination.execute("PRAGMA busy_timeout=30000")
        source.backup(destination, pages=1024, progress=step)
    finally:
        source.close()
        destination.close()
        task.finish()


@dataclass
class CheckReport:
    path: Path
    manifest: Manifest
    seconds: float
    problems: list[str] = field(default_factory=list)


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    try:
        return script.get_revision(revision) is not None
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        return False


def restore_backup(
    archive: Path, url: str, *, force: bool = False, progress: Progress = SILENT
) -> CheckReport:
    """Restore ``archive`` into the database at ``url`` (stop every Shipboard process first),
    then check counts and checksums against the manifest."""
    started = time.monotonic()
    url = normalize_database_url(url)
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    occupied = _occupied(url)
    if occupied and not force:
        raise Conflict(
            f"the database is not empty (rows in {', '.join(occupied[:5])}"
            f"{', …' if len(occupied) > 5 else ''}): restore replaces everything in it only "
            "with --force"
        )
    scratch_parent = sqlite_file(url).parent if backend == "sqlite" else None
    if scratch_parent is not None:
        scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".shipboard-restore-", dir=scratch_parent) as tmp:
        manifest, dump = read_archive(archive, Path(tmp), progress=progress)
        if manifest.backend != backend:
            raise InvalidInput(
                f"{archive} is a {manifest.backend} backup and the database is {backend}: "
                "restore it into the same backend (then `shipboard db copy` moves SQLite to "
                "PostgreSQL)"
            )
        if not _known_revision(manifest.schema_revision):
            raise InvalidInput(
                f"{archive} was made at schema revision {manifest.schema_revision}, which "
                f"Shipboard {__version__} does not know: restore it with Shipboard "
                f"{manifest.shipboard_version} or newer"
            )
        if backend == "sqlite":
            snapshot = Path(tmp) / "database.sqlite"
            gunzip_file(dump, snapshot)
            dump.unlink()
            _restore_sqlite_file(snapshot, sqlite_file(url), progress=progress)
        else:
            engine = create_db_engine(url, poolclass=sa.pool.NullPool)
            try:
                with engine.begin() as conn:
                    require_bypass_rls(conn, what="restore")
                    # A running server holds locks on the tables: say so instead of waiting.
                    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{RESTORE_LOCK_WAIT_S}s'"))
                    try:
                        clear_postgres_schema(conn)
                    except sa.exc.OperationalError as exc:
                        if getattr(exc.orig, "sqlstate", None) != "55P03":
                            raise
                        raise Conflict(
                            f"the database is in use (its tables stayed locked for "
                            f"{RESTORE_LOCK_WAIT_S} s): stop every Shipboard process before "
                            "restoring"
                        ) from exc
            finally:
                engine.dispose()
            pg_restore(dump, url, progress=progress)
    revision, tables, partitions = digest_database(url, progress=progress)
    problems = manifest_problems(manifest, revision, tables, partitions)
    if problems:
        raise ShipboardError(
            f"restored {archive}, but the database does not match its manifest: "
            + "; ".join(problems)
        )
    return CheckReport(path=archive, manifest=manifest, seconds=time.monotonic() - started)


def _occupied(url: str) -> list[str]:
    if url.startswith("sqlite") and not sqlite_file(url).exists():
        return []
    engine = (
        plain_sqlite_engine(sqlite_file(url))
        if url.startswith("sqlite")
        else create_db_engine(url, poolclass=sa.pool.NullPool)
    )
    try:
        with engine.connect() as conn:
            return tables_with_rows(conn)
    finally:
        engine.dispose()
