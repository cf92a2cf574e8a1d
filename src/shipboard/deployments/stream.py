"""Helpers for the live log stream (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import encode_cursor
from shipboard.deployments import repository, service, state
from shipboard.deployments.schemas import DeploymentLogPage, DeploymentLogRead

POLL_S = 0.25
KEEPALIVE_S = 15.0
BATCH = 500


class Bell:
    """Wakes the streams of a deployment as soon as its new lines are committed in this process.

    Lines written by another process (a separate ``shipboard worker``, another API process) are
    still found by polling every ``POLL_S``; the bell only removes that wait for the common
    one-process case and for lines appended through this API process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[uuid.UUID, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextlib.contextmanager
    def listen(self, deployment_id: uuid.UUID) -> Iterator[asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting.setdefault(deployment_id, []).append(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                entries = self._waiting.get(deployment_id, [])
                entries.remove(entry)
                if not entries:
                    self._waiting.pop(deployment_id, None)

    def listening(self, deployment_id: uuid.UUID) -> int:
        """How many streams of this deployment are open in this process."""
        with self._lock:
            return len(self._waiting.get(deployment_id, ()))

    def ring(self, deployment_ids: set[uuid.UUID]) -> None:
        with self._lock:
            entries = [e for d in deployment_ids for e in self._waiting.get(d, ())]
        for loop, event in entries:
            # Committed from a worker or request thread; the event belongs to the server's loop.
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody to wake
                loop.call_soon_threadsafe(event.set)


BELL = Bell()


@sa.event.listens_for(Session, "after_commit")
def _ring_after_commit(session: Session) -> None:
    written = session.info.pop(repository.LOGS_WRITTEN, None)
    if written:
        BELL.ring(written)


@sa.event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(repository.LOGS_WRITTEN, None)


def poll(
    session: Session, *, deployment_id: uuid.UUID, cursor: str | None
) -> tuple[DeploymentLogPage, str | None]:
    """New lines after ``cursor``, and the final status once the deployment has ended.

    The status is read before the lines, so an ``end`` never overtakes a last line written just
    before the deployment finished."""
    deployment = repository.get(session, deployment_id)
    final = deployment.status if deployment and deployment.status in state.TERMINAL else None
    page = service.list_logs(session, deployment_id=deployment_id, cursor=cursor, limit=BATCH)
    return page, final


def cursor_after(line: DeploymentLogRead) -> str:
    return encode_cursor(line.timestamp, line.id)


def sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {part}\n" for part in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n".encode()
