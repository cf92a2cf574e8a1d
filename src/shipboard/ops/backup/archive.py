"""The archive file: a tar of the manifest then the dump, written atomically and read back
checked against the manifest's size and SHA-256."""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from shipboard.core.errors import InvalidInput, ShipboardError
from shipboard.ops.backup.manifest import MANIFEST, Manifest, parse_manifest
from shipboard.ops.backup.progress import SILENT, Progress

ARCHIVE_PREFIX = "shipboard-backup-"
ARCHIVE_SUFFIX = ".tar"
CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 16 << 20
# Not enough room, whether the disk, a quota or a file-size limit says so.
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def backup_file_name(moment: datetime) -> str:
    return f"{ARCHIVE_PREFIX}{moment:%Y%m%dT%H%M%SZ}{ARCHIVE_SUFFIX}"


def no_room_error(exc: OSError, output: Path) -> ShipboardError:
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


def hash_file(path: Path) -> str:
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


def gzip_file(source: Path, target: Path, *, progress: Progress) -> None:
    task = progress.task("compressing", total=source.stat().st_size)
    try:
        with source.open("rb") as inp, gzip.open(target, "wb", compresslevel=6) as out:
            while chunk := inp.read(CHUNK):
                out.write(chunk)
                task.advance(len(chunk))
    finally:
        task.finish()


def gunzip_file(source: Path, target: Path) -> None:
    try:
        with gzip.open(source, "rb") as inp, target.open("wb") as out:
            shutil.copyfileobj(inp, out, CHUNK)
    except (OSError, EOFError) as exc:
        if isinstance(exc, OSError) and exc.errno in NO_ROOM:
            raise
        raise InvalidInput(f"{source.name} does not decompress: {exc}") from exc
