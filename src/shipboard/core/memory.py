"""Keep a long-running process's resident memory flat."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
DEFAULT_ARENAS = 2


def cap_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Limit glibc malloc to ``arenas`` arenas; True if the limit was set.

    glibc gives each new thread an arena of its own, up to eight per core, and rarely hands
    their freed memory back. A server runs a thread pool, pipeline, scheduler, sender and
    checkpoint threads, so RSS crept up under steady load (+10 % in a 30-minute soak) with
    nothing leaking. Two arenas are what Python's GIL can keep busy anyway. An operator's
    ``MALLOC_ARENA_MAX`` wins; elsewhere than glibc this does nothing."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
