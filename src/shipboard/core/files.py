"""Files Shipboard writes are its own: directories 0700, files 0600.

The home holds the SQLite database (with its ``-wal`` and ``-shm``), the key file and backups;
any of them copied by another local user would yield the data, and with the key file, the
secrets. Three layers, so no path is forgotten:

- the ``shipboard`` command sets its umask to 077 at start, so every file and directory the
  process creates is private (the database, its WAL and shared memory, backups, exports);
  pipeline steps get the umask the command was started with back (``step_umask``), so what a
  deploy script creates is as the operator expects;
- the SQLite file is created 0600 before SQLite opens it, and an existing one (or its WAL
  and shared memory) that others may read is tightened: SQLite gives the ``-wal`` and ``-shm``
  files the mode of the database, whichever process or umask opens it;
- the home and the SQLite file's directory are created 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
_inherited: list[int] = []


def restrict_umask() -> None:
    """Make every file this process creates private; remember the umask it was started with."""
    previous = os.umask(PRIVATE_UMASK)
    if not _inherited:
        _inherited.append(previous)


def step_umask() -> int:
    """The umask for a child the operator wrote (a pipeline step): the one Shipboard was started
    with, or -1 (leave it) when this process never changed its own."""
    return _inherited[0] if _inherited else -1


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing; the directory itself 0700."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode passes through the umask; say it exactly
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and 0600 if missing; take group and other access from it (and
    from a SQLite database's ``-wal``/``-shm`` beside it) if present."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = each.stat().st_mode & 0o777
            if mode & 0o077:
                os.chmod(each, mode & 0o700)
        except FileNotFoundError:
            continue
        except PermissionError:
            # Another user's file (a shared read-only database): not ours to change.
            continue
    return path
