"""glibc malloc arenas are capped in long-running processes (``shipboard serve``/``worker``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# Eight threads each allocate while holding a buffer, then glibc reports its arenas on stderr.
_PROGRAM = textwrap.dedent(
    """
    import ctypes, ctypes.util, sys, threading
    from shipboard.core.memory import cap_malloc_arenas
    if sys.argv[1] == "cap":
        assert cap_malloc_arenas(), "mallopt refused"
    barrier = threading.Barrier(8)
    def work():
        held = [bytearray(200_000) for _ in range(4)]  # above pymalloc's size: glibc malloc
        barrier.wait()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
    """
)


def _arenas(mode: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode],
        check=False,
        capture_output=True,
        text=True,
        env=environ,
    )
    assert done.returncode == 0, done.stderr
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_arenas_are_capped_at_two() -> None:
    assert _arenas("free") > 2  # without the cap, threads take arenas of their own
    assert _arenas("cap") <= 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_operator_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipboard.core.memory import cap_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert cap_malloc_arenas() is False
