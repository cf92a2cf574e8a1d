"""Backups: one archive per run, checked against its own manifest.

The archive is a plain POSIX tar holding two members, in this order:

- ``manifest.json``: format, Shipboard version, backend, schema revision, creation time, the
  dump's size and SHA-256, and per table its row count and content checksum (on PostgreSQL, the
  row count of every partition too);
- the dump: ``database.sqlite.gz`` (a gzip-compressed SQLite file made with the online backup
  API) or ``database.pgdump`` (``pg_dump --format=custom``).

The content checksum of a table is the sum modulo 2**256 of the SHA-256 of every row's canonical
rendering (:func:`canonical_row`). A sum does not depend on row order, so the same rows give the
same checksum on SQLite and PostgreSQL whatever their collations, and ``db copy`` verifies its
copy with it too.
"""

from __future__ import annotations

import contextlib
import decimal
import errno
import glob
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from shipboard import __version__
from shipboard.config import normalize_database_url
from shipboard.core.errors import Conflict, InvalidInput, ShipboardError
from shipboard.core.time import utcnow
from shipboard.db import migrate
from shipboard.db.engine import APP_ROLE, create_db_engine, is_postgres
from shipboard.db.types import format_utc

FORMAT = "shipboard-backup"
FORMAT_VERSION = 1
CHECKSUM_ALGORITHM = "sha256-row-sum-v1"
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite.gz"
PG_MEMBER = "database.pgdump"
ARCHIVE_PREFIX = "shipboard-backup-"
ARCHIVE_SUFFIX = ".tar"
BATCH = 5000
CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 16 << 20
_MOD = 1 << 256
# Not enough room, whether the disk, a quota or a file-size limit says so.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# A PostgreSQL advisory lock key beside the scheduler's and the migrations'.
SCHEDULED_BACKUP_LOCK = 0x5B1B0A51
RESTORE_LOCK_WAIT_S = 15


# --- progress ---------------------------------------------------------------------------------


class Task(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None) -> Task: ...


class _SilentTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def finish(self) -> None:
        pass


class SilentProgress:
    def task(self, description: str, total: float | None = None) -> Task:
        return _SilentTask()


SILENT = SilentProgress()


# --- canonical rows and checksums (pure) --------------------------------------------------------


@dataclass(frozen=True)
class TableDigest:
    rows: int
    checksum: str


# Normalizing must never round: PostgreSQL's numeric holds more digits than any default context.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def canonical_number(value: Any) -> str:
    """The same text for the same number, however it was stored: ``2``, ``2.0``,
    ``Decimal('2.00')`` and ``"2E+0"`` all give ``2``, ``100`` gives ``1E+2``. Floats are taken at
    their shortest round-trip repr, which is what ``db copy`` writes into PostgreSQL's
    ``numeric``."""
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if number.is_nan():
        return "NaN"
    if number.is_infinite():
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_zero():
        return "0"  # and not "-0": PostgreSQL's numeric has no negative zero
    return str(number.normalize(_EXACT))


def _json_number(text: str) -> dict[str, str]:
    # Tagged, so that the number 1 and the string "1" stay different.
    return {"#n": canonical_number(text)}


def canonical_json_text(text: str | bytes) -> Any:
    """A JSON document as stored (SQLite's text, PostgreSQL's ``jsonb::text``), canonicalized:
    jsonb reorders keys and rewrites numbers (``1e-07`` comes back as ``0.0000001``)."""
    try:
        parsed = json.loads(
            text, parse_float=_json_number, parse_int=_json_number, parse_constant=_json_number
        )
    except ValueError:
        return {"#invalid": text if isinstance(text, str) else text.hex()}
    return {"#json": parsed}


def canonical_value(value: Any, kind: str) -> Any:  # noqa: PLR0911 - one return per type
    """One column's value as the JSON the row checksum is taken over.

    ``kind`` comes from the column's declared type (:func:`column_kind`); the rest follows the
    value's Python type, so that a PostgreSQL ``uuid``/``timestamptz`` and SQLite's text of the
    same value render the same.
    """
    if value is None:
        return None
    if kind == "json":
        return canonical_json_text(value) if isinstance(value, str | bytes) else value
    if kind == "bool":
        return bool(value)
    if kind == "number":
        return canonical_number(value)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        return canonical_number(value)
    if isinstance(value, datetime):
        return format_utc(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | clock_time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"#bytes": bytes(value).hex()}
    return str(value)


def row_hash(row: Mapping[str, Any]) -> int:
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


def column_kind(type_: Any) -> str:
    if isinstance(type_, sa.JSON):
        return "json"
    if isinstance(type_, sa.Boolean):
        return "bool"
    if isinstance(type_, sa.Integer):
        return "int"
    if isinstance(getattr(type_, "impl", type_), sa.Numeric | sa.Float):  # NumberType decorates
        return "number"
    return "plain"


class Digest:
    """The running checksum of one table (order-independent)."""

    def __init__(self) -> None:
        self.rows = 0
        self._sum = 0

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows += 1
        self._sum = (self._sum + row_hash(row)) % _MOD

    def result(self) -> TableDigest:
        return TableDigest(self.rows, self._sum.to_bytes(32, "big").hex())


def compare_tables(
    expected: Mapping[str, TableDigest], actual: Mapping[str, TableDigest], *, what: str
) -> list[str]:
    """What differs between two sets of digests, one sentence per table."""
    problems = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            problems.append(f"table {name}: in {what}, missing from the database")
        elif name not in expected:
            problems.append(f"table {name}: in the database, not in {what}")
        elif actual[name].rows != expected[name].rows:
            problems.append(
                f"table {name}: {actual[name].rows} rows, {what} says {expected[name].rows}"
            )
        elif actual[name].checksum != expected[name].checksum:
            problems.append(
                f"table {name}: content checksum {actual[name].checksum[:12]}… differs from "
                f"{what}'s {expected[name].checksum[:12]}…"
            )
    return problems


def compare_partitions(expected: Mapping[str, int], actual: Mapping[str, int]) -> list[str]:
    problems = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            problems.append(f"partition {name}: in the manifest, missing from the database")
        elif name not in expected:
            problems.append(f"partition {name}: in the database, not in the manifest")
        elif actual[name] != expected[name]:
            problems.append(
                f"partition {name}: {actual[name]} rows, the manifest says {expected[name]}"
            )
    return problems


# --- reading a database -----------------------------------------------------------------------


def user_tables(conn: sa.Connection) -> list[str]:
    """Every table of the schema, partitions excepted (their parents hold their rows) and
    Alembic's bookkeeping, which the manifest records as the schema revision."""
    if is_postgres(conn):
        names = conn.scalars(
            sa.text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
                "AND NOT c.relispartition"
            )
        ).all()
    else:
        names = conn.scalars(
            sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        ).all()
    return sorted(str(n) for n in names if n != "alembic_version")


def partition_counts(conn: sa.Connection) -> dict[str, int]:
    """Rows per partition on PostgreSQL (an empty mapping on SQLite)."""
    if not is_postgres(conn):
        return {}
    names = conn.scalars(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND p.relkind = 'p'"
        )
    ).all()
    quote = conn.dialect.identifier_preparer.quote
    return {
        str(name): int(conn.scalar(sa.text(f"SELECT count(*) FROM {quote(name)}")) or 0)
        for name in sorted(names)
    }


def schema_revision(conn: sa.Connection) -> str | None:
    if "alembic_version" not in sa.inspect(conn).get_table_names():
        return None
    value = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    return str(value) if value is not None else None


def count_rows(conn: sa.Connection, tables: list[str]) -> dict[str, int]:
    quote = conn.dialect.identifier_preparer.quote
    return {t: int(conn.scalar(sa.text(f"SELECT count(*) FROM {quote(t)}")) or 0) for t in tables}


def tables_with_rows(conn: sa.Connection) -> list[str]:
    quote = conn.dialect.identifier_preparer.quote
    return [
        t
        for t in user_tables(conn)
        if conn.scalar(sa.text(f"SELECT EXISTS (SELECT 1 FROM {quote(t)})"))
    ]


def table_digest(
    conn: sa.Connection, table: str, *, advance: Callable[[float], None] | None = None
) -> TableDigest:
    """Row count and content checksum of one table, streamed in batches."""
    columns = [(c["name"], column_kind(c["type"])) for c in sa.inspect(conn).get_columns(table)]
    quote = conn.dialect.identifier_preparer.quote
    pg = is_postgres(conn)
    selected = ", ".join(
        f"CAST({quote(name)} AS TEXT)" if pg and kind == "json" else quote(name)
        for name, kind in columns
    )
    digest = Digest()
    result = conn.exec_driver_sql(
        f"SELECT {selected} FROM {quote(table)}", execution_options={"yield_per": BATCH}
    )
    for batch in result.partitions():
        for row in batch:
            digest.add(
                {
                    name: canonical_value(value, kind)
                    for (name, kind), value in zip(columns, row, strict=True)
                }
            )
        if advance is not None:
            advance(len(batch))
    return digest.result()


def database_digests(
    conn: sa.Connection, *, progress: Progress = SILENT, tables: list[str] | None = None
) -> dict[str, TableDigest]:
    """Digests of every table (or of ``tables``), with one progress bar over all their rows."""
    tables = user_tables(conn) if tables is None else tables
    counts = count_rows(conn, tables)
    task = progress.task("checksums", total=sum(counts.values()) or None)
    try:
        return {t: table_digest(conn, t, advance=task.advance) for t in tables}
    finally:
        task.finish()


def require_bypass_rls(conn: sa.Connection, *, what: str) -> None:
    """Row-level security would hide rows from a role that does not bypass it (and pg_dump
    refuses to run under it): whole-database work needs a superuser or a BYPASSRLS role."""
    if not is_postgres(conn):
        return
    if conn.scalar(
        sa.text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ):
        return
    raise InvalidInput(
        f"{what} needs a PostgreSQL role that bypasses row-level security (a superuser, or the "
        "owner with BYPASSRLS): under RLS some rows would be missed"
    )


# --- the manifest -----------------------------------------------------------------------------


@dataclass
class Manifest:
    backend: str
    schema_revision: str
    created_at: str
    shipboard_version: str
    server_version: str
    dump_name: str
    dump_bytes: int
    dump_sha256: str
    tables: dict[str, TableDigest]
    partitions: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "shipboard_version": self.shipboard_version,
            "backend": self.backend,
            "server_version": self.server_version,
            "schema_revision": self.schema_revision,
            "checksum_algorithm": CHECKSUM_ALGORITHM,
            "dump": {"name": self.dump_name, "bytes": self.dump_bytes, "sha256": self.dump_sha256},
            "tables": {
                name: {"rows": d.rows, "checksum": d.checksum}
                for name, d in sorted(self.tables.items())
            },
            "partitions": dict(sorted(self.partitions.items())),
        }
        return json.dumps(data, indent=2).encode()


_HEX64 = re.compile(r"[0-9a-f]{64}")


def parse_manifest(raw: bytes) -> Manifest:
    """The manifest of an archive, or InvalidInput saying what is wrong with it."""

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"manifest.json {why}: the archive is damaged or not a backup")

    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise bad("is not valid JSON") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f"is not a {FORMAT} manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(
            f"backup format version {data.get('format_version')!r} is not one Shipboard "
            f"{__version__} reads (it reads version {FORMAT_VERSION})"
        )
    if data.get("checksum_algorithm") != CHECKSUM_ALGORITHM:
        raise bad(f"names an unknown checksum algorithm {data.get('checksum_algorithm')!r}")
    backend = data.get("backend")
    if backend not in ("sqlite", "postgresql"):
        raise bad(f"names an unknown backend {backend!r}")
    dump = data.get("dump")
    if (
        not isinstance(dump, dict)
        or dump.get("name") not in (SQLITE_MEMBER, PG_MEMBER)
        or not _is_count(dump.get("bytes"))
        or not isinstance(dump.get("sha256"), str)
        or not _HEX64.fullmatch(dump["sha256"])
    ):
        raise bad("has no valid 'dump' entry")
    tables: dict[str, TableDigest] = {}
    raw_tables = data.get("tables")
    if not isinstance(raw_tables, dict) or not raw_tables:
        raise bad("lists no tables")
    for name, entry in raw_tables.items():
        if (
            not isinstance(entry, dict)
            or not _is_count(entry.get("rows"))
            or not isinstance(entry.get("checksum"), str)
            or not _HEX64.fullmatch(entry["checksum"])
        ):
            raise bad(f"has an invalid entry for table {name!r}")
        tables[str(name)] = TableDigest(entry["rows"], entry["checksum"])
    partitions = data.get("partitions") or {}
    if not isinstance(partitions, dict) or not all(_is_count(v) for v in partitions.values()):
        raise bad("has an invalid 'partitions' entry")
    for key in ("schema_revision", "created_at", "shipboard_version"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise bad(f"has no {key!r}")
    return Manifest(
        backend=backend,
        schema_revision=data["schema_revision"],
        created_at=data["created_at"],
        shipboard_version=data["shipboard_version"],
        server_version=str(data.get("server_version", "")),
        dump_name=dump["name"],
        dump_bytes=dump["bytes"],
        dump_sha256=dump["sha256"],
        tables=tables,
        partitions={str(k): int(v) for k, v in partitions.items()},
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- files ------------------------------------------------------------------------------------


def backup_file_name(moment: datetime) -> str:
    return f"{ARCHIVE_PREFIX}{moment:%Y%m%dT%H%M%SZ}{ARCHIVE_SUFFIX}"


def _no_room(exc: OSError, output: Path) -> ShipboardError:
    return ShipboardError(
        f"backup not written: {os.strerror(exc.errno or errno.ENOSPC)} "
        f"({exc.filename or output}); {output} was left as it was"
    )


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A file that appears at ``path`` complete or not at all: written beside it under a hidden
    name, synced, then renamed over it. A device or a pipe (which cannot be replaced by a
    rename) is written to directly."""
    if path.exists() and not path.is_file():
        with path.open("wb") as handle:
            yield handle
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    with contextlib.suppress(OSError):  # not every filesystem syncs a directory
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class _Counting:
    """A readable file that reports how much has been read from it."""

    def __init__(self, handle: IO[bytes], advance: Callable[[float], None]) -> None:
        self._handle = handle
        self._advance = advance

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._advance(len(chunk))
        return chunk


def write_archive(output: Path, manifest: Manifest, dump: Path, *, progress: Progress) -> int:
    """Write the tar (manifest first, then the dump) atomically; return its size."""
    text = manifest.to_json()
    task = progress.task(f"writing {output.name}", total=manifest.dump_bytes)
    try:
        with atomic_output(output) as handle:
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo(MANIFEST)
                info.size = len(text)
                info.mtime = int(time.time())
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(text))
                info = tarfile.TarInfo(manifest.dump_name)
                info.size = manifest.dump_bytes
                info.mtime = int(time.time())
                info.mode = 0o600
                with dump.open("rb") as source:
                    tar.addfile(info, _Counting(source, task.advance))
            size = handle.tell() if handle.seekable() else 0
    finally:
        task.finish()
    return size


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_archive(
    archive: Path, workdir: Path, *, progress: Progress = SILENT
) -> tuple[Manifest, Path]:
    """Read the manifest and extract the dump into ``workdir``, checking the dump's size and
    SHA-256 against the manifest. Raises InvalidInput naming what is wrong."""
    if not archive.is_file():
        raise InvalidInput(f"{archive}: no such backup file")
    try:
        with tarfile.open(archive, mode="r:") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise InvalidInput(f"{archive} is not a Shipboard backup (no {MANIFEST} first)")
            if first.size > MAX_MANIFEST_BYTES:
                raise InvalidInput(f"{archive}: {MANIFEST} is implausibly large")
            extracted = tar.extractfile(first)
            assert extracted is not None
            manifest = parse_manifest(extracted.read())
            second = tar.next()
            if second is None:
                raise InvalidInput(
                    f"{archive} is truncated: {manifest.dump_name} is missing after the manifest"
                )
            if second.name != manifest.dump_name or not second.isfile():
                raise InvalidInput(
                    f"{archive}: expected {manifest.dump_name} after the manifest, found "
                    f"{second.name!r}"
                )
            if second.size != manifest.dump_bytes:
                raise InvalidInput(
                    f"{archive}: {second.name} holds {second.size} bytes, the manifest says "
                    f"{manifest.dump_bytes}: the archive was altered or damaged"
                )
            target = workdir / second.name
            source = tar.extractfile(second)
            assert source is not None
            digest = hashlib.sha256()
            task = progress.task(f"reading {archive.name}", total=second.size)
            try:
                with target.open("wb") as out:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        task.advance(len(chunk))
            finally:
                task.finish()
            # Two zero blocks end a tar: without them the copy of the file was cut short, even
            # if only after the dump.
            end = second.offset_data + -(-second.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            if archive.stat().st_size < end + 2 * tarfile.BLOCKSIZE:
                raise InvalidInput(f"{archive} is truncated: its end-of-archive marker is missing")
    except (tarfile.TarError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInput(f"{archive} is truncated or damaged: {exc}") from exc
    if digest.hexdigest() != manifest.dump_sha256:
        raise InvalidInput(
            f"{archive}: {manifest.dump_name} does not match the SHA-256 in its manifest "
            f"(sha256 {digest.hexdigest()[:16]}…, manifest {manifest.dump_sha256[:16]}…): "
            "the archive was altered or damaged"
        )
    return manifest, target


def _gzip(source: Path, target: Path, *, progress: Progress) -> None:
    task = progress.task("compressing", total=source.stat().st_size)
    try:
        with source.open("rb") as inp, gzip.open(target, "wb", compresslevel=6) as out:
            while chunk := inp.read(CHUNK):
                out.write(chunk)
                task.advance(len(chunk))
    finally:
        task.finish()


def _gunzip(source: Path, target: Path) -> None:
    try:
        with gzip.open(source, "rb") as inp, target.open("wb") as out:
            shutil.copyfileobj(inp, out, CHUNK)
    except (OSError, EOFError) as exc:
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
            raise
        raise InvalidInput(f"{source.name} does not decompress: {exc}") from exc


# --- PostgreSQL client tools ------------------------------------------------------------------


def _tool_major(path: str) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    found = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(found.group(1)) if found else None


@lru_cache(maxsize=8)
def find_pg_tool(name: str, server_major: int) -> str:
    """``pg_dump``/``pg_restore`` at least as new as the server: the closest such version among
    PATH and /usr/lib/postgresql/*/bin (Debian installs every major version there)."""
    candidates = [os.path.join(d, name) for d in glob.glob("/usr/lib/postgresql/*/bin")]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(on_path)
    found = []
    for path in dict.fromkeys(candidates):
        if os.access(path, os.X_OK):
            major = _tool_major(path)
            if major is not None:
                found.append((major, path))
    if not found:
        raise ShipboardError(
            f"{name} not found on PATH nor in /usr/lib/postgresql/*/bin: install the PostgreSQL "
            f"client tools (e.g. postgresql-client-{server_major})"
        )
    usable = sorted(f for f in found if f[0] >= server_major)
    if not usable:
        raise ShipboardError(
            f"{name} {max(found)[0]} is older than the server (PostgreSQL {server_major}): "
            f"install postgresql-client-{server_major}"
        )
    return usable[0][1]


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """The connection URI for libpq tools, without the password, and the environment that
    carries the password (never argv, which every local user can read in the process list)."""
    parsed = make_url(normalize_database_url(url))
    # Not URL.set(password=None): None there means "unchanged".
    plain = sa.engine.URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    )
    conninfo = plain.render_as_string(hide_password=False)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    return conninfo, env


def _server_major(conn: sa.Connection) -> int:
    return int(conn.scalar(sa.text("SHOW server_version_num")) or 0) // 10000


def _server_version(conn: sa.Connection) -> str:
    if is_postgres(conn):
        return f"PostgreSQL {conn.scalar(sa.text('SHOW server_version'))}"
    return f"SQLite {sqlite3.sqlite_version}"


def _run_tool(
    args: list[str], env: dict[str, str], *, task: Task, counts: Callable[[str], bool]
) -> None:
    """Run a pg_* tool, advancing ``task`` for each of its verbose lines ``counts`` accepts;
    raise with its error lines if it fails."""
    process = subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert process.stderr is not None
    messages: list[str] = []
    for line in process.stderr:
        if counts(line):
            task.advance(1)
        elif re.search(r"\b(error|fatal|detail|hint|warning)\b", line, re.IGNORECASE):
            messages.append(line.strip())
    code = process.wait()
    if code != 0:
        tool = os.path.basename(args[0])
        text = " / ".join(messages[-6:]) or "no message"
        if code < 0:
            text = f"killed by {signal.Signals(-code).name}; {text}"
        if "No space left" in text or "File too large" in text or "SIGXFSZ" in text:
            prefix = "backup not written: " if tool.startswith("pg_dump") else ""
            raise ShipboardError(f"{prefix}{tool} ran out of room (is the disk full?): {text}")
        raise ShipboardError(f"{tool} failed (exit {code}): {text}")


# --- create -----------------------------------------------------------------------------------


@dataclass
class BackupReport:
    path: Path
    manifest: Manifest
    bytes: int
    seconds: float


def _sqlite_file(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise InvalidInput("backups need a SQLite database file, not an in-memory database")
    return Path(database)


def _plain_sqlite_engine(path: Path) -> Engine:
    # Not create_db_engine: it would switch a scratch copy to WAL and leave -wal/-shm files.
    return sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)


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
        if exc.errno in _NO_ROOM:
            raise _no_room(exc, output) from exc
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
        dump_sha256=_hash_file(dump),
        tables=tables,
        partitions=partitions,
    )


def _create_sqlite(
    url: str, tmp: Path, *, progress: Progress, now: datetime
) -> tuple[Manifest, Path]:
    source = _sqlite_file(url)
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
    scratch = _plain_sqlite_engine(snapshot)
    try:
        with scratch.connect() as conn:
            revision = schema_revision(conn)
            tables = database_digests(conn, progress=progress)
            server_version = _server_version(conn)
    finally:
        scratch.dispose()
    dump = tmp / SQLITE_MEMBER
    _gzip(snapshot, dump, progress=progress)
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
            tool = find_pg_tool("pg_dump", _server_major(conn))
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
                    _run_tool(
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
                server_version = _server_version(conn)
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


# --- restore into a database ------------------------------------------------------------------


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


def _pg_restore(dump: Path, url: str, *, progress: Progress) -> None:
    engine = create_db_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            tool = find_pg_tool("pg_restore", _server_major(conn))
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
        _run_tool(
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


def _digest_database(
    url: str, *, progress: Progress
) -> tuple[str | None, dict[str, TableDigest], dict[str, int]]:
    engine = (
        _plain_sqlite_engine(_sqlite_file(url))
        if url.startswith("sqlite")
        else create_db_engine(url, poolclass=sa.pool.NullPool)
    )
    try:
        with engine.connect() as conn:
            return (
                schema_revision(conn),
                database_digests(conn, progress=progress),
                partition_counts(conn),
            )
    finally:
        engine.dispose()


def _check(
    manifest: Manifest,
    revision: str | None,
    tables: dict[str, TableDigest],
    partitions: dict[str, int],
) -> list[str]:
    problems = []
    if revision != manifest.schema_revision:
        problems.append(
            f"schema revision {revision or 'none'}, the manifest says {manifest.schema_revision}"
        )
    problems += compare_tables(manifest.tables, tables, what="the manifest")
    if manifest.backend == "postgresql":
        problems += compare_partitions(manifest.partitions, partitions)
    return problems


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
    scratch_parent = _sqlite_file(url).parent if backend == "sqlite" else None
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
            _gunzip(dump, snapshot)
            dump.unlink()
            _restore_sqlite_file(snapshot, _sqlite_file(url), progress=progress)
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
            _pg_restore(dump, url, progress=progress)
    revision, tables, partitions = _digest_database(url, progress=progress)
    problems = _check(manifest, revision, tables, partitions)
    if problems:
        raise ShipboardError(
            f"restored {archive}, but the database does not match its manifest: "
            + "; ".join(problems)
        )
    return CheckReport(path=archive, manifest=manifest, seconds=time.monotonic() - started)


def _occupied(url: str) -> list[str]:
    if url.startswith("sqlite") and not _sqlite_file(url).exists():
        return []
    engine = (
        _plain_sqlite_engine(_sqlite_file(url))
        if url.startswith("sqlite")
        else create_db_engine(url, poolclass=sa.pool.NullPool)
    )
    try:
        with engine.connect() as conn:
            return tables_with_rows(conn)
    finally:
        engine.dispose()


# --- verify -----------------------------------------------------------------------------------


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
            _gunzip(dump, snapshot)
            dump.unlink()
            problems = _sqlite_integrity(snapshot)
            if not problems:
                problems = _check(
                    manifest, *_digest_database(f"sqlite:///{snapshot}", progress=progress)
                )
        else:
            if not scratch_url or not normalize_database_url(scratch_url).startswith("postgresql"):
                raise InvalidInput(
                    f"{archive} is a PostgreSQL backup: verifying it restores it into a scratch "
                    "database, which needs a PostgreSQL server (set SHIPBOARD_DATABASE_URL or "
                    "pass --scratch-url)"
                )
            with scratch_database(scratch_url) as scratch:
                _pg_restore(dump, scratch, progress=progress)
                problems = _check(manifest, *_digest_database(scratch, progress=progress))
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


# --- scheduled backups ------------------------------------------------------------------------


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
    each slot is backed up once even when leadership moves between nodes around it."""
    from shipboard.audit import service as audit
    from shipboard.audit.models import AuditEvent
    from shipboard.audit.service import AuditContext
    from shipboard.db.engine import system_transaction

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
    report = create_backup(url, directory=directory)
    return report, prune_backups(directory, keep)
