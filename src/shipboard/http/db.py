"""The request's transaction: one per request, committed before the response is sent, with a
free database connection waited for on the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from shipboard.db.engine import transaction

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def connection_slots(request: Request) -> anyio.Semaphore:
    slots: anyio.Semaphore | None = getattr(request.app.state, "db_slots", None)
    if slots is None:
        pool = request.app.state.engine.pool
        capacity = 10_000
        if isinstance(pool, QueuePool):
            capacity = pool.size() + max(int(getattr(pool, "_max_overflow", 0)), 0)
        slots = request.app.state.db_slots = anyio.Semaphore(capacity)
    return slots


async def _connection_slot(request: Request) -> AsyncIterator[None]:
    """Wait for a free database connection here, on the event loop, not in a worker thread.

    Sync dependencies and routes run in a pool of 40 threads. With more requests in flight than
    database connections, threads blocked waiting for a connection left none for the requests
    that held one to finish (their route, their commit): every request stalled until the pool
    timed out (100 concurrent clients acknowledged nothing in minutes, CPU idle)."""
    async with connection_slots(request):
        yield


def get_db(
    request: Request, _slot: Annotated[None, Depends(_connection_slot, scope="function")]
) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back if it raises.

    Work that must survive a rollback (telling people a request was refused) registers a
    callable in ``request.state.after_rollback``; it runs once the rollback has released the
    transaction's locks."""
    write = request.method not in READ_METHODS
    try:
        with transaction(request.app.state.engine, write=write) as session:
            yield session
    except Exception:
        for callback in getattr(request.state, "after_rollback", []):
            callback()
        raise


# scope="function": commit before the response is sent, so a failed commit is an error response.
DbSession = Annotated[Session, Depends(get_db, scope="function")]
