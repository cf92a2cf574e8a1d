"""Runs one shell step: its own process group, lines as they come, timeout and cancel."""

from __future__ import annotations

import codecs
import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from shipboard.core.files import step_umask
from shipboard.core.nulguard import scrub

KILL_GRACE_S = 2.0


@dataclass
class StepOutcome:
    exit_code: int | None
    reason: str | None  # "timeout", "cancelled: <who>", "lost lease", or None when it exited


MASK = "***"
READ_BYTES = 65536
# A line longer than this (a step printing without newlines) is stored in pieces, so a step
# cannot make the worker hold an unbounded line; the API takes messages of the same size.
MAX_LINE = 65536
# Lines of a multi-line secret shorter than this are not masked on their own: "}" or "" would
# mask every brace in the output and say which character the secret holds.
MIN_SECRET_LINE = 4


def mask_patterns(secrets: Iterable[str]) -> list[str]:
    """What to mask for these secret values, longest first: each value, and each line of a
    multi-line value (a PEM key printed with a prefix, indented, or with CRLF shows its lines,
    not the value as stored)."""
    patterns: set[str] = set()
    for value in secrets:
        if not value:
            continue
        patterns.add(value)
        if "\n" in value or "\r" in value:
            patterns.update(
                line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_SECRET_LINE
            )
    return sorted(patterns, key=len, reverse=True)


def mask(text: str, patterns: list[str]) -> str:
    """Replace every occurrence of every pattern (longest first, see mask_patterns) with ***."""
    for value in patterns:
        text = text.replace(value, MASK)
    return text


class StreamMasker:
    """Masks secrets in text that arrives in pieces: a value split between two reads of the
    pipe is still found, because the end of what was read that could begin a secret is held
    back until the next piece shows whether it does (or the stream ends)."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        self.pending = ""

    def feed(self, text: str) -> str:
        """The masked text that is safe to pass on now."""
        masked = mask(self.pending + text, self.patterns)
        keep = self._held(masked)
        self.pending = masked[len(masked) - keep :]
        return masked[: len(masked) - keep]

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return rest

    def _held(self, text: str) -> int:
        """The length of the longest end of ``text`` that is the start of a pattern."""
        if not text:
            return 0
        last, best = text[-1], 0
        for pattern in self.patterns:
            # Only prefixes ending in the text's last character can match; longest first.
            end = min(len(pattern) - 1, len(text))
            while end > best:
                at = pattern.rfind(last, 0, end)
                if at < best:
                    break
                if text.endswith(pattern[: at + 1]):
                    best = at + 1
                    break
                end = at
        return best


class LineSplitter:
    """Text in, complete lines out (without their line ending); a line past MAX_LINE is cut."""

    def __init__(self) -> None:
        self.partial = ""

    def feed(self, text: str, *, final: bool = False) -> list[str]:
        *lines, self.partial = (self.partial + text).split("\n")
        out = [line.rstrip("\r") for line in lines]
        while len(self.partial) > MAX_LINE:
            out.append(self.partial[:MAX_LINE])
            self.partial = self.partial[MAX_LINE:]
        if final and self.partial:
            out.append(self.partial.rstrip("\r"))
            self.partial = ""
        return out


def run_step(
    command: str,
    *,
    cwd: str,
    env: dict[str, str],
    timeout_s: float,
    on_lines: Callable[[list[tuple[str, str]]], None],
    interrupt: Callable[[], str | None],
    secrets: Iterable[str] = (),
    flush_every_s: float = 0.1,
) -> StepOutcome:
    """Run ``command`` under /bin/sh -c. ``on_lines`` receives (stream, line) batches as they are
    produced, with every value of ``secrets`` masked (each line of a multi-line one too);
    ``interrupt`` is polled and returns a reason to stop (cancel, lost lease) or None."""
    patterns = mask_patterns(secrets)
    proc = subprocess.Popen(  # noqa: S603 - the command is the environment's configured step
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so cancel and timeout reach children
        umask=step_umask(),  # the operator's, not the 077 Shipboard keeps for its own files
    )
    lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, "stdout", lines, patterns), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "stderr", lines, patterns), daemon=True),
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


def _pump(
    stream: IO[bytes] | None,
    name: str,
    out: queue.Queue[tuple[str, str] | None],
    patterns: list[str],
) -> None:
    """Read a pipe as it fills (not line by line: a secret may arrive in two writes), mask the
    text as a stream, then cut it into lines."""
    assert stream is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    masker = StreamMasker(patterns)
    splitter = LineSplitter()
    try:
        while True:
            chunk = os.read(stream.fileno(), READ_BYTES)
            # PostgreSQL stores no NUL in text: it would fail the whole batch's insert.
            text = masker.feed(scrub(decoder.decode(chunk, final=not chunk)))
            if not chunk:
                text += masker.flush()
            for line in splitter.feed(text, final=not chunk):
                out.put((name, line))
            if not chunk:
                break
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
