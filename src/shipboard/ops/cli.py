"""`shipboard secrets …` (key management) and `shipboard backup …`/`db copy`, run on the
server's machine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from shipboard.core import formatting
from shipboard.core.crypto import generate_key
from shipboard.core.errors import ShipboardError
from shipboard.core.terminal import JsonFlag, console, printable

secrets_app = typer.Typer(help="Encryption keys for secret values.", no_args_is_help=True)


@secrets_app.command("generate-key")
def generate() -> None:
    """Print a new Fernet key for SHIPBOARD_SECRET_KEYS."""
    print(generate_key())


@secrets_app.command("rotate-key")
def rotate_key(
    key_stdin: Annotated[
        bool,
        typer.Option(
            "--key-stdin",
            help="Use the key read from standard input (one already configured as a secondary "
            "key everywhere: no process is left unable to decrypt) instead of generating one",
        ),
    ] = False,
    print_keys: Annotated[
        bool,
        typer.Option("--print-keys", help="With a key file, also print the keys to stdout"),
    ] = False,
) -> None:
    """Re-encrypt every stored secret under a new primary key, in one transaction."""
    import sys

    from shipboard.auth.cli import cli_audit_context
    from shipboard.config import get_settings
    from shipboard.core.crypto import Keyring, key_fingerprint, write_key_file
    from shipboard.core.errors import InvalidInput
    from shipboard.db.engine import create_db_engine, system_transaction
    from shipboard.ops.keys import rotate_key as rotate

    err = console(stderr=True, soft_wrap=True)
    settings = get_settings()
    keyring = Keyring.from_settings(settings.secret_keys, settings.home)
    new_key = sys.stdin.readline().strip() if key_stdin else generate_key()
    try:
        Keyring([new_key.encode()])
    except ShipboardError as exc:
        raise InvalidInput("standard input does not hold a Fernet key") from exc
    key_file = keyring.key_file

    def save(keys: list[str]) -> None:
        # Before the commit: a committed database whose key is lost cannot be read again.
        if key_file is not None:
            write_key_file(key_file, keys)
        if key_file is None or print_keys:
            print(f"SHIPBOARD_SECRET_KEYS={','.join(keys)}", flush=True)

    engine = create_db_engine(settings.effective_database_url)
    try:
        with system_transaction(engine) as session:
            rotation = rotate(
                session,
                keyring=keyring,
                new_key=new_key,
                audit_context=cli_audit_context(),
                before_commit=save,
            )
    except Exception:
        err.print("rotation rolled back: the stored secrets are unchanged (old keys still work)")
        raise
    finally:
        engine.dispose()
    counts = ", ".join(f"{n} in {t}" for t, n in rotation.reencrypted.items()) or "none stored"
    err.print(f"re-encrypted {sum(rotation.reencrypted.values())} value(s): {counts}")
    err.print(f"new primary key {rotation.primary_fingerprint}; older keys still decrypt")
    if key_file is not None:
        err.print(f"key file {key_file} updated (new key first); processes reload it on their own")
    else:
        err.print(
            "put the line above in SHIPBOARD_SECRET_KEYS of every process and restart them; drop "
            "an old key once `shipboard secrets check` shows no value needs it"
        )
    err.print(f"old keys: {', '.join(key_fingerprint(k) for k in rotation.keys[1:])}")


@secrets_app.command("check")
def check(
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document on standard output, for scripts."),
    ] = False,
) -> None:
    """Report stored values no configured key decrypts (table, row, field); exit 1 if any."""
    import json

    from rich.table import Table

    from shipboard.config import get_settings
    from shipboard.core.crypto import Keyring
    from shipboard.db.engine import create_db_engine, system_transaction
    from shipboard.ops.keys import check_keys

    settings = get_settings()
    keyring = Keyring.from_settings(settings.secret_keys, settings.home)
    engine = create_db_engine(settings.effective_database_url)
    try:
        with system_transaction(engine) as session:
            result = check_keys(session, keyring=keyring)
    finally:
        engine.dispose()
    if as_json:
        print(
            json.dumps(
                {
                    "total": result.total,
                    "by_key": result.by_key,
                    "undecryptable": [vars(u) for u in result.undecryptable],
                }
            )
        )
    else:
        out = console()
        for position, (fingerprint, count) in enumerate(result.by_key.items()):
            role = "primary" if position == 0 else f"key {position + 1}"
            out.print(f"{role} {fingerprint}: {count} value(s)")
        if result.undecryptable:
            table = Table("table", "row", "field", title="values no configured key decrypts")
            for u in result.undecryptable:
                table.add_row(u.table, u.row, u.field)
            out.print(table)
        else:
            out.print(f"all {result.total} stored value(s) decrypt")
    if not result.ok:
        raise typer.Exit(1)


# --- backups and db copy (issue #10) ----------------------------------------------------------

backup_app = typer.Typer(
    help="Back up the database (SHIPBOARD_DATABASE_URL), check an archive, restore one.",
    no_args_is_help=True,
)


class _RichTask:
    def __init__(self, bar: Any, task: Any) -> None:
        self._bar = bar
        self._task = task
        self._done = 0.0

    def advance(self, amount: float = 1) -> None:
        self._done += amount
        self._bar.advance(self._task, amount)

    def finish(self) -> None:
        # An open-ended task (no total) would otherwise pulse for ever.
        done = max(self._done, 1)
        self._bar.update(self._task, total=done, completed=done)


class _RichProgress:
    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def task(self, description: str, total: float | None = None) -> _RichTask:
        return _RichTask(self._bar, self._bar.add_task(printable(description), total=total))


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """Rich progress bars on standard error, for a person at a terminal only."""
    from shipboard.ops.backup.progress import SILENT

    if not enabled:
        yield SILENT
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        yield _RichProgress(bar)


def _wants_progress(as_json: bool) -> bool:
    from shipboard.client import progress_wanted

    return progress_wanted(as_json=as_json)


def _manifest_json(manifest: Any) -> dict[str, Any]:
    return {
        "backend": manifest.backend,
        "schema_revision": manifest.schema_revision,
        "created_at": manifest.created_at,
        "shipboard_version": manifest.shipboard_version,
        "rows": manifest.rows,
        "tables": {n: {"rows": d.rows, "checksum": d.checksum} for n, d in manifest.tables.items()},
        "partitions": manifest.partitions,
    }


@backup_app.command("create")
def backup_create(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Archive to write (default: a timestamped .tar in SHIPBOARD_BACKUP_DIR)",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Back up the whole database into one archive (safe while the server runs).

    The archive holds the dump (SQLite's online backup, or pg_dump) and a manifest of every
    table's row count and checksum; it appears whole or not at all."""
    import json

    from shipboard.config import get_settings
    from shipboard.ops.backup.create import create_backup

    settings = get_settings()
    with _progress(_wants_progress(as_json)) as progress:
        report = create_backup(
            settings.effective_database_url,
            output=output,
            directory=settings.effective_backup_dir,
            progress=progress,
        )
    if as_json:
        print(
            json.dumps(
                {
                    "path": str(report.path),
                    "bytes": report.bytes,
                    "seconds": round(report.seconds, 3),
                    **_manifest_json(report.manifest),
                }
            )
        )
        return
    manifest = report.manifest
    console(stderr=True, soft_wrap=True).print(
        f"backup written: {report.path} ({formatting.size(report.bytes)}; {manifest.backend}, "
        f"schema {manifest.schema_revision}, {len(manifest.tables)} tables, {manifest.rows} rows) "
        f"in {report.seconds:.1f} s"
    )


@backup_app.command("verify")
def backup_verify(
    file: Annotated[Path, typer.Argument(help="The archive to check")],
    scratch_url: Annotated[
        str | None,
        typer.Option(
            "--scratch-url",
            envvar="SHIPBOARD_SCRATCH_URL",
            help="PostgreSQL server where a PostgreSQL backup is restored into a temporary "
            "database (default: SHIPBOARD_DATABASE_URL's server)",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check an archive against its manifest, without touching the live database.

    The dump's SHA-256 first, then the dump restored into a scratch database: every table's
    rows and checksum. Exit 2 names what is wrong."""

    from shipboard.config import get_settings
    from shipboard.ops.backup.verify import verify_backup

    if scratch_url is None and get_settings().database_url:
        scratch_url = get_settings().effective_database_url
    with _progress(_wants_progress(as_json)) as progress:
        report = verify_backup(file, scratch_url=scratch_url, progress=progress)
    manifest = report.manifest
    if as_json:
        _print_checked(file, report.seconds, manifest)
        return
    console(stderr=True, soft_wrap=True).print(
        f"{file}: OK — {manifest.backend} backup of {manifest.created_at}, schema "
        f"{manifest.schema_revision}, {len(manifest.tables)} tables and {manifest.rows} rows "
        f"match their counts and checksums (checked in {report.seconds:.1f} s)"
    )


def _print_checked(file: Path, seconds: float, manifest: Any) -> None:
    """The --json answer of verify and restore: the archive, the time, and its manifest."""
    import json

    print(
        json.dumps(
            {
                "path": str(file),
                "ok": True,
                "seconds": round(seconds, 3),
                **_manifest_json(manifest),
            }
        )
    )


@backup_app.command("restore")
def backup_restore(
    file: Annotated[Path, typer.Argument(help="The archive to restore")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a database that holds data (everything in it)"),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Restore an archive into the configured database, then check it against the manifest.

    Stop every Shipboard process first. A database that holds data is replaced only with
    --force."""

    from shipboard.config import get_settings
    from shipboard.ops.backup.restore import restore_backup

    url = get_settings().effective_database_url
    with _progress(_wants_progress(as_json)) as progress:
        report = restore_backup(file, url, force=force, progress=progress)
    manifest = report.manifest
    if as_json:
        _print_checked(file, report.seconds, manifest)
        return
    console(stderr=True, soft_wrap=True).print(
        f"restored {file} ({manifest.backend} backup of {manifest.created_at}): "
        f"{len(manifest.tables)} tables, {manifest.rows} rows, counts and checksums match "
        f"(in {report.seconds:.1f} s)"
    )


def db_copy(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            envvar="SHIPBOARD_COPY_TO",
            help="postgresql://… URL of an empty database (SHIPBOARD_COPY_TO keeps its password "
            "out of the process list)",
            show_default=False,
        ),
    ],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=100_000, help="Rows per insert")
    ] = 2000,
    as_json: JsonFlag = False,
) -> None:
    """Copy this SQLite instance into an empty PostgreSQL database.

    The target is migrated first; every table is copied in foreign-key order, secrets still
    encrypted (keep the same SHIPBOARD_SECRET_KEYS), and checked by counts and checksums before
    it commits. Stop the server first."""
    import json

    from shipboard.config import get_settings
    from shipboard.ops.copy import copy_database

    with _progress(_wants_progress(as_json)) as progress:
        report = copy_database(
            get_settings().effective_database_url, to, batch_size=batch_size, progress=progress
        )
    if as_json:
        print(
            json.dumps(
                {
                    "rows": report.rows,
                    "seconds": round(report.seconds, 3),
                    "partitions_created": report.partitions_created,
                    "tables": {
                        n: {"rows": d.rows, "checksum": d.checksum}
                        for n, d in report.tables.items()
                    },
                }
            )
        )
        return
    console(stderr=True, soft_wrap=True).print(
        f"copied {len(report.tables)} tables, {report.rows} rows, in {report.seconds:.1f} s; "
        "counts and checksums match the source. Point SHIPBOARD_DATABASE_URL at the copy, keep "
        "SHIPBOARD_SECRET_KEYS (or the key file) as it is, and start Shipboard."
    )
