"""Reading metrics in a route on the event loop, from whichever store answers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio

from shipboard.core.promql import PromStore
from shipboard.http.db import RequestDb

T = TypeVar("T")


async def read(db: RequestDb, store: PromStore | None, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """``fn(session, store=store, **kwargs)``. From the metrics store, over HTTP that may take
    seconds: in a worker thread, never on the loop, with no session (the database is not read)
    and outside the request's transaction (no connection held while the store is waited for).
    From the database: in the request's transaction."""
    if store is not None:
        async with db.outside():
            return await anyio.to_thread.run_sync(partial(fn, None, store=store, **kwargs))
    return await db.run(fn, store=None, **kwargs)
