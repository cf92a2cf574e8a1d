"""The request's transaction: one per request, committed before the response is sent, with a
free database connection waited for on the event loop.

Two ways to run it (docs/architecture.md, "The request's data path"):

- **On the event loop** (routes declared ``async def`` that take :data:`RequestDb`): the
  services and repositories stay plain functions of a ``Session``; ``await db.run(fn, …)``
  runs one of them. On PostgreSQL the session sits on psycopg's async connections through
  SQLAlchemy's asyncio extension, so ``fn`` runs in a greenlet and each statement waits on the
  loop. On SQLite a read runs inline on the loop: in WAL mode a reader never waits for a lock,
  and a query of a few milliseconds costs less there than two thread hand-offs.
- **In a worker thread** (every sync route, and a write on SQLite, whose ``BEGIN IMMEDIATE``
  can wait up to the busy timeout): ``run`` hands ``fn`` to anyio's thread pool.

Either way there is one transaction per request, shared by every dependency that asks for it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

import anyio
from fastapi import Depends, FastAPI, Request
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from shipboard.db.engine import create_async_twin, is_postgres, transaction

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
P = ParamSpec("P")
T = TypeVar("T")


class RequestDb:
    """The request's transaction; ``await run(fn, *args, **kwargs)`` calls ``fn(session, …)``."""

    mode = "thread"

    def __init__(self, session: Session) -> None:
        self.session = session

    def outside(self) -> AbstractAsyncContextManager[None]:
        """A block that waits on something outside the database (the metrics store, over
        HTTP, for up to its timeout) with no transaction open; see :class:`_Reopening`."""
        raise RuntimeError("only the request's own transaction can be left for a while")

    async def run(
        self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await anyio.to_thread.run_sync(partial(fn, self.session, *args, **kwargs))


class _InlineDb(RequestDb):
    """SQLite reads on the loop itself."""

    mode = "inline"

    async def run(
        self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return fn(self.session, *args, **kwargs)


class _GreenletDb(RequestDb):
    """PostgreSQL through psycopg's async connections: ``fn`` runs in a greenlet."""

    mode = "async"

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session.sync_session)
        self._async = session

    async def run(
        self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self._async.run_sync(fn, *args, **kwargs)


def _pool_capacity(engine: Engine) -> int:
    pool = engine.pool
    if isinstance(pool, QueuePool):
        return pool.size() + max(int(getattr(pool, "_max_overflow", 0)), 0)
    return 10_000


def connection_slots(request: Request, *, on_loop: bool = False) -> anyio.Semaphore:
    """Free connections of the pool the request will use, waited for on the event loop."""
    state = request.app.state
    name = "db_slots_async" if on_loop and is_postgres(state.engine) else "db_slots"
    slots: anyio.Semaphore | None = getattr(state, name, None)
    if slots is None:
        slots = anyio.Semaphore(_pool_capacity(state.engine))
        setattr(state, name, slots)
    return slots


def async_engine(app: FastAPI) -> AsyncEngine:
    """The PostgreSQL engine's async twin, made on first use on the serving loop.

    A pooled async connection belongs to the loop that opened it; an app served on another
    loop (a test client's) gets a twin of its own."""
    loop = asyncio.get_running_loop()
    current: tuple[asyncio.AbstractEventLoop, AsyncEngine] | None = getattr(
        app.state, "async_engine", None
    )
    if current is None or current[0] is not loop:
        current = (loop, create_async_twin(app.state.engine))
        app.state.async_engine = current
    return current[1]


async def dispose_async_engine(app: FastAPI) -> None:
    current = getattr(app.state, "async_engine", None)
    if current is not None:
        app.state.async_engine = None
        await current[1].dispose()


def on_loop(request: Request) -> bool:
    """Whether this request's transaction runs on the event loop: its route is an ``async
    def`` and neither it nor any of its dependencies asks for a sync ``DbSession``."""
    route = request.scope.get("route")
    endpoint = request.scope.get("endpoint")
    if route is None or endpoint is None or not inspect.iscoroutinefunction(endpoint):
        return False
    cached: bool | None = getattr(route, "_shipboard_on_loop", None)
    if cached is None:
        dependant = getattr(route, "dependant", None)
        cached = dependant is not None and not _wants_session(dependant)
        route._shipboard_on_loop = cached
    return cached


def _wants_session(dependant: Any) -> bool:
    return any(
        sub.call is get_db or _wants_session(sub) for sub in getattr(dependant, "dependencies", ())
    )


@asynccontextmanager
async def open_request_db(request: Request, *, write: bool, loop: bool) -> AsyncIterator[RequestDb]:
    """One transaction, committed when the block ends and rolled back if it raises; the
    connection slot is held for as long as the transaction is open."""
    engine: Engine = request.app.state.engine
    postgres = is_postgres(engine)
    async with connection_slots(request, on_loop=loop):
        if loop and postgres:
            async with (
                AsyncSession(
                    async_engine(request.app), expire_on_commit=False, autoflush=False
                ) as session,
                session.begin(),
            ):
                yield _GreenletDb(session)
        elif loop and not write:
            with transaction(engine, write=False) as read_session:
                yield _InlineDb(read_session)
        else:
            async with _threaded_transaction(engine, write=write) as db:
                yield db


@asynccontextmanager
async def _threaded_transaction(engine: Engine, *, write: bool) -> AsyncIterator[RequestDb]:
    """``transaction()`` entered and left in worker threads: on SQLite both may wait for the
    write lock. Leaving is shielded, so a cancelled request still ends its transaction."""
    manager = transaction(engine, write=write)
    session = await anyio.to_thread.run_sync(manager.__enter__)
    try:
        yield RequestDb(session)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(manager.__exit__, type(exc), exc, exc.__traceback__)
        raise
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(manager.__exit__, None, None, None)


class _Reopening(RequestDb):
    """The request's transaction as routes and dependencies see it. A read route that must
    wait on the metrics store first leaves it (``async with db.outside():``): the transaction
    commits and its connection and slot go back to the pool, so a store that hangs for its
    whole timeout holds no PostgreSQL connection idle in a transaction, and twenty such
    requests cannot take every connection from the routes that need one. The next ``run``
    opens a new transaction. A write keeps its one transaction: leaving it would commit half
    of the request."""

    def __init__(self, request: Request, *, write: bool, loop: bool) -> None:
        self._request, self._write, self._loop = request, write, loop
        self._stack: AsyncExitStack | None = None
        self._db: RequestDb | None = None

    @property
    def session(self) -> Session:
        if self._db is None:
            raise RuntimeError("the request's transaction is not open (inside db.outside())")
        return self._db.session

    @session.setter
    def session(self, _value: Session) -> None:
        raise AttributeError("the request's session is its transaction's")

    @property
    def mode(self) -> str:
        return self._db.mode if self._db is not None else "closed"

    @mode.setter
    def mode(self, _value: str) -> None:
        raise AttributeError("a request's mode is its transaction's")

    async def open(self) -> RequestDb:
        if self._db is None:
            stack = AsyncExitStack()
            self._db = await stack.enter_async_context(
                open_request_db(self._request, write=self._write, loop=self._loop)
            )
            self._stack = stack
        return self._db

    async def close(self, exc: BaseException | None = None) -> None:
        stack, self._stack, self._db = self._stack, None, None
        if stack is not None:
            await stack.__aexit__(
                type(exc) if exc else None, exc, exc.__traceback__ if exc else None
            )

    async def run(
        self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        db = await self.open()
        return await db.run(fn, *args, **kwargs)

    @asynccontextmanager
    async def outside(self) -> AsyncIterator[None]:
        if self._write:
            raise RuntimeError("a write request keeps its one transaction")
        await self.close()
        yield


async def get_request_db(request: Request) -> AsyncIterator[RequestDb]:
    """One transaction per request: committed when the route returns, rolled back if it raises
    (a read route may leave it while it waits on the metrics store: :class:`_Reopening`).

    Work that must survive a rollback (telling people a request was refused) registers a
    callable in ``request.state.after_rollback``; it runs once the rollback has released the
    transaction's locks."""
    write = request.method not in READ_METHODS
    db = _Reopening(request, write=write, loop=on_loop(request))
    await db.open()
    try:
        yield db
    except BaseException as exc:
        await db.close(exc)
        if isinstance(exc, Exception):
            for callback in getattr(request.state, "after_rollback", []):
                await anyio.to_thread.run_sync(callback)
        raise
    await db.close()


# scope="function": commit before the response is sent, so a failed commit is an error response.
RequestDbDep = Annotated[RequestDb, Depends(get_request_db, scope="function")]


async def get_db(db: RequestDbDep) -> Session:
    """The request's session, for code that runs in a worker thread (``on_loop`` is False for
    any route that asks for this)."""
    return db.session


DbSession = Annotated[Session, Depends(get_db, scope="function")]
