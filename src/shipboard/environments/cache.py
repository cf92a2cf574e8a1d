"""Environment settings that every ingest request reads, cached per process for a second.

Every metric, OTLP and performance batch checks that its environments exist and spends the
environment's write budget: two queries a request for values that change a few times a year.
A write in this process clears the cache as it flushes and again when it commits (a reader that
raced the commit may have put the old value back). Other processes (API replicas, workers) see a
change when their entry expires, so ``TTL_S`` bounds how long a changed setting outlives its
change anywhere. A transaction that has changed an environment reads it fresh, never from here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

from shipboard.environments.models import Environment

TTL_S = 1.0
_CHANGED = "shipboard_environments_changed"
T = TypeVar("T")


class _Entries:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[Hashable, tuple[float, Any]] = {}
        # Bumped by every invalidation: a value loaded across one is not kept.
        self.generation = 0


_state = _Entries()


def cached(session: Session, key: Hashable, load: Callable[[], T]) -> T:
    """``load()``'s value for ``key``, at most ``TTL_S`` old."""
    if session.info.get(_CHANGED):
        return load()
    # One process may serve several databases (tests, the bench, a restore): key by database.
    key = (session.get_bind().engine.url, key)
    now = time.monotonic()
    with _state.lock:
        hit = _state.values.get(key)
        generation = _state.generation
    if hit is not None and hit[0] > now:
        value: T = hit[1]
        return value
    value = load()
    with _state.lock:
        if _state.generation == generation:
            _state.values[key] = (now + TTL_S, value)
    return value


def invalidate() -> None:
    with _state.lock:
        _state.generation += 1
        _state.values.clear()


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, _context: Any) -> None:
    if any(
        isinstance(obj, Environment) for obj in chain(session.new, session.dirty, session.deleted)
    ):
        session.info[_CHANGED] = True
        invalidate()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        invalidate()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        invalidate()
