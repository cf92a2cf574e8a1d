"""The live log stream (Server-Sent Events): budgets of streams, and one poll per deployment.

Every stream of a deployment in this process reads from one ``Feed``: a task that polls the
database for new lines (every ``POLL_S``, or at once when a commit in this process rings the
``Bell``) and keeps them, encoded, for its listeners. So the database sees one query per
deployment per interval however many people watch it, and ``StreamBudget`` bounds how many
streams one user, and the whole process, may hold open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from shipboard.core.errors import RateLimited
from shipboard.core.pagination import encode_cursor
from shipboard.db.engine import transaction
from shipboard.deployments import repository, service, state
from shipboard.deployments.schemas import DeploymentLogPage, DeploymentLogRead

log = structlog.get_logger(__name__)

POLL_S = 0.25
KEEPALIVE_S = 15.0
BATCH = 500
# A listener checks this often whether its client left, so its slot is given back soon.
CHECK_S = 1.0
# Lines a feed keeps for listeners that join late; a deployment with more (rare) sends its
# older lines to a late listener from the database, once, before the feed takes over.
BUFFER_LINES = 10_000
# A full budget frees up when someone closes a stream: there is no time to promise, so a client
# is asked to wait a little before it tries again.
RETRY_AFTER_S = 10


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


# --- budgets -------------------------------------------------------------------------------


class StreamBudget:
    """Open streams per user and in the whole process; past either, 429 with Retry-After."""

    def __init__(self, *, per_user: int, per_process: int) -> None:
        self.per_user = per_user
        self.per_process = per_process
        self._lock = threading.Lock()
        self._by_user: dict[uuid.UUID, int] = {}
        self._total = 0

    def acquire(self, user_id: uuid.UUID) -> Callable[[], None]:
        """Take a slot for ``user_id``; the callable gives it back (once, however often called)."""
        with self._lock:
            if self.per_process and self._total >= self.per_process:
                raise RateLimited(
                    f"this server has {self.per_process} live log streams open, its limit; "
                    f"try again in {RETRY_AFTER_S} s",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            mine = self._by_user.get(user_id, 0)
            if self.per_user and mine >= self.per_user:
                raise RateLimited(
                    f"you have {mine} live log streams open, the limit is {self.per_user}; "
                    "close one or try again later",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            self._by_user[user_id] = mine + 1
            self._total += 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                self._total -= 1
                left = self._by_user.get(user_id, 1) - 1
                if left > 0:
                    self._by_user[user_id] = left
                else:
                    self._by_user.pop(user_id, None)

        return release

    def open_streams(self) -> int:
        with self._lock:
            return self._total


# --- one poll per deployment ---------------------------------------------------------------


class Feed:
    """The lines of one deployment, polled once for every listener of it in this process."""

    def __init__(self, deployment_id: uuid.UUID, engine: Engine) -> None:
        self.deployment_id = deployment_id
        self.engine = engine
        self.lines: list[bytes] = []  # encoded ``log`` events, oldest first
        self.ids: dict[uuid.UUID, int] = {}  # line id -> its position (counted from the start)
        self.offset = 0  # the position of lines[0]: lines before it were let go
        self.end: bytes | None = None
        self.failed = False
        self.listeners = 0
        self.tick = asyncio.Event()  # replaced on every change; the old one is set
        self._cursor: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def next_position(self) -> int:
        return self.offset + len(self.lines)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _changed(self) -> None:
        tick, self.tick = self.tick, asyncio.Event()
        tick.set()

    def _poll(self) -> tuple[DeploymentLogPage, str | None]:
        with transaction(self.engine, write=False) as session:
            return poll(session, deployment_id=self.deployment_id, cursor=self._cursor)

    async def _run(self) -> None:
        with BELL.listen(self.deployment_id) as bell:
            while True:
                bell.clear()  # before looking: a line committed from here on rings again
                try:
                    batch, status = await run_in_threadpool(self._poll)
                except Exception:  # noqa: BLE001 - the database went away: end the streams
                    log.warning("log_stream_poll_failed", deployment_id=str(self.deployment_id))
                    self.failed = True
                    self._changed()
                    return
                self._append(batch.items)
                self._cursor = batch.next_cursor or (
                    cursor_after(batch.items[-1]) if batch.items else self._cursor
                )
                if status is not None and not batch.items:
                    self.end = sse("end", json.dumps({"status": status}))
                    self._changed()
                    return
                if batch.items:
                    self._changed()
                    continue  # more may be waiting: read on before sleeping
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(bell.wait(), POLL_S)

    def _append(self, items: list[DeploymentLogRead]) -> None:
        for line in items:
            self.ids[line.id] = self.next_position
            self.lines.append(sse("log", line.model_dump_json()))
        excess = len(self.lines) - BUFFER_LINES
        if excess > 0:
            self.offset += excess
            del self.lines[:excess]
            self.ids = {k: p for k, p in self.ids.items() if p >= self.offset}


class Feeds:
    """The feeds of one server process (one event loop), created and dropped with listeners."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._feeds: dict[uuid.UUID, Feed] = {}

    def active(self) -> int:
        return len(self._feeds)

    async def follow(
        self, deployment_id: uuid.UUID, *, disconnected: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[bytes]:
        """Every line of the deployment from its first, then new ones, then ``end``."""
        feed = self._feeds.get(deployment_id)
        if feed is None:
            feed = self._feeds[deployment_id] = Feed(deployment_id, self.engine)
            feed.start()
        feed.listeners += 1
        try:
            async for chunk in self._listen(feed, disconnected):
                yield chunk
        finally:
            feed.listeners -= 1
            if feed.listeners == 0:
                feed.stop()
                if self._feeds.get(deployment_id) is feed:
                    del self._feeds[deployment_id]

    async def _listen(
        self, feed: Feed, disconnected: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[bytes]:
        position = caught_up = 0
        idle = 0.0
        while True:
            if await disconnected():
                return
            tick = feed.tick
            if position < feed.offset:
                # The feed let go of lines this listener has not had (a long log, joined late):
                # read them from the database once, up to a line the feed still holds.
                async for chunk, reached in _catch_up(feed, position):
                    if chunk:
                        yield chunk
                    caught_up = reached
                position = caught_up
                continue
            if position < feed.next_position:
                start = position - feed.offset
                count = min(BATCH, feed.next_position - position)
                position += count
                idle = 0.0
                yield b"".join(feed.lines[start : start + count])
                continue
            if feed.end is not None:
                yield feed.end
                return
            if feed.failed:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tick.wait(), CHECK_S)
                continue
            idle += CHECK_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield b": keep-alive\n\n"


async def _catch_up(feed: Feed, position: int) -> AsyncIterator[tuple[bytes, int]]:
    """Lines from the database, from the start, until one the feed holds; then its position."""
    cursor: str | None = None
    sent = 0
    while True:

        def page(after: str | None = cursor) -> DeploymentLogPage:
            with transaction(feed.engine, write=False) as session:
                return service.list_logs(
                    session, deployment_id=feed.deployment_id, cursor=after, limit=BATCH
                )

        batch = await run_in_threadpool(page)
        out: list[bytes] = []
        for line in batch.items:
            held = feed.ids.get(line.id)
            if held is not None:
                yield b"".join(out), held
                return
            if sent >= position:
                out.append(sse("log", line.model_dump_json()))
            sent += 1
        if out:
            yield b"".join(out), sent
        if not batch.items or batch.next_cursor is None:
            # The end of what is stored, and the feed holds none of it: it starts after.
            yield b"", feed.offset
            return
        cursor = batch.next_cursor
