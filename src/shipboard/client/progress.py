"""Progress bars for uploads and downloads, drawn only for a person at a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

from shipboard.core.terminal import console, printable

# Uploads smaller than this finish before a progress bar would be worth drawing.
PROGRESS_MIN_BYTES = 1024 * 1024


def progress_wanted(*, as_json: bool = False) -> bool:
    """Draw progress bars only for a person: standard output and error are terminals, and the
    output is not JSON meant for a script."""
    return not as_json and sys.stdout.isatty() and sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(
    total: int | None, description: str, *, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on standard error; yields ``advance(n)``. A no-op when disabled."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(printable(description), total=total)
        yield lambda n: bar.advance(task, n)


class ProgressReader:
    """A file wrapper that reports how much of it was read (httpx reads uploads in chunks, and
    seeks back to the start before a retry)."""

    def __init__(self, handle: IO[bytes], advance: Callable[[int], None]) -> None:
        self._handle = handle
        self._advance = advance
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._position += len(chunk)
        self._advance(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        self._advance(position - self._position)
        self._position = position
        return position

    def tell(self) -> int:
        return self._handle.tell()

    def fileno(self) -> int:
        return self._handle.fileno()


def file_size(value: Any) -> int | None:
    handle = value[1] if isinstance(value, tuple) and len(value) > 1 else value
    try:
        return os.fstat(handle.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None
