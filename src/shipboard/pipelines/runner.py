"""Runs one shell step: its own process group, lines as they come, timeout and cancel."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from shipboard.core.nulguard import scrub

KILL_GRACE_S = 2.0


@dataclass
class StepOutcome:
    exit_code: int | None
    reason: str | None  # "timeout", "cancelled: <who>", "lost lease", or None when it exited


def mask(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of every secret value, longest first, with ***."""
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


def run_step(
    command: str,
    *,
    cwd: str,
    env: dict[str, str],
    timeout_s: float,
    on_lines: Callable[[list[tuple[str, str]]], None],
    interrupt: Callable[[], str | None],
    flush_every_s: float = 0.1,
) -> StepOutcome:
    """Run ``command`` under /bin/sh -c. ``on_lines`` receives (stream, line) batches as they are
    produced; ``interrupt`` is polled and returns a reason to stop (cancel, lost lease) or None."""
    proc = subprocess.Popen(  # noqa: S603 - the command is the environment's configured step
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so cancel and timeout reach children
    )
    lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, "stdout", lines), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "stderr", lines), daemon=True),
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout_s
    reason: str | None = None
    open_streams = 2
    while open_streams:
        batch: list[tuple[str, str]] = []
        flush_at = time.monotonic() + flush_every_s
        while time.monotonic() < flush_at and open_streams:
            try:
                item = lines.get(timeout=max(0.0, flush_at - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                open_streams -= 1
            else:
                batch.append(item)
        if batch:
            on_lines(batch)
        if reason is None:
            reason = "timeout" if time.monotonic() > deadline else interrupt()
            if reason is not None:
                _kill_group(proc)
        if proc.poll() is not None and open_streams:
            # The shell is gone; background children still holding the pipes would keep us
            # here forever. Their group goes with the step.
            _kill_group(proc, grace_s=0.2)
    code = proc.wait()
    return StepOutcome(exit_code=None if reason else code, reason=reason)


def _pump(stream: IO[bytes] | None, name: str, out: queue.Queue[tuple[str, str] | None]) -> None:
    assert stream is not None
    try:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            # PostgreSQL stores no NUL in text: it would fail the whole batch's insert.
            out.put((name, scrub(line)))
    finally:
        stream.close()
        out.put(None)


def _kill_group(proc: subprocess.Popen[bytes], *, grace_s: float = KILL_GRACE_S) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
