"""PostgreSQL's client tools (pg_dump, pg_restore): found, pointed at a server without
putting the password on the command line, and run with progress."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shipboard.config import normalize_database_url
from shipboard.core.errors import ShipboardError
from shipboard.db.engine import is_postgres
from shipboard.ops.backup.progress import Task


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


def server_major(conn: sa.Connection) -> int:
    return int(conn.scalar(sa.text("SHOW server_version_num")) or 0) // 10000


def describe_server(conn: sa.Connection) -> str:
    if is_postgres(conn):
        return f"PostgreSQL {conn.scalar(sa.text('SHOW server_version'))}"
    return f"SQLite {sqlite3.sqlite_version}"


def run_tool(
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
